/**
 * `bundlemirror pull -c CONFIG --daemon`: runs the replica daemon
 * (src/replica/daemon/daemon.ts) until SIGTERM or SIGINT, reloading the config on
 * SIGHUP (which also reopens the log after a rotation). The first SIGTERM/SIGINT stops it cleanly (exit 0); a second one
 * while it stops ends the process at once.
 */
import { readPullConfig, type PullConfig } from '../replica/config/config.js';
import { startDaemon } from '../replica/daemon/daemon.js';
import type { PullLog } from '../replica/log.js';
import { InterruptedError } from '../errors.js';
import { bytesIn, firstSignal, keptDirs } from './interrupt.js';
import { waitMessages } from './wait-messages.js';
import { progressLines } from './progress-bars.js';

export interface PullDaemonFlags {
  config: PullConfig;
  log: PullLog;
  /** undefined: as the config says; true: -p; false: --no-purge. */
  purge?: boolean | undefined;
  forcePurge?: boolean | undefined;
  /** --retry-for, over `[pull] retry_for`. */
  retryForMs?: number | undefined;
  /** false for --no-progress: no periodic progress lines. */
  progress?: boolean | undefined;
}

export async function runPullDaemon(flags: PullDaemonFlags): Promise<void> {
  const { log } = flags;
  const daemon = await startDaemon({
    config: flags.config,
    log,
    loadConfig: () => readPullConfig(flags.config.file),
    ...(flags.purge !== undefined ? { purge: flags.purge } : {}),
    forcePurge: !!flags.forcePurge,
    pullOptions: {
      ...(flags.retryForMs !== undefined ? { retryForMs: flags.retryForMs } : {}),
      onWait: waitMessages((l) => log.warn(l)),
      ...(flags.progress === false ? {} : { onProgress: progressLines((l) => log.info(l)) }),
    },
  });
  const onHangup = () => {
    // logrotate moved the log away: write to a new file of that name from here on
    log.reopen?.();
    log.info('SIGHUP: log reopened, reloading the configuration');
    void daemon.reload();
  };
  process.on('SIGHUP', onHangup);
  const signal = await firstSignal(['SIGTERM', 'SIGINT']);
  log.info(`${signal}: stopping (send it again to end at once)`);
  const interrupted = new InterruptedError(signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
  const cut = await daemon.stop(interrupted);
  process.off('SIGHUP', onHangup);
  await log.flush();
  // a run cut short is an interruption (exit 130/143, partials kept); stopping between runs is a clean exit
  if (cut) {
    interrupted.keptBytes = await bytesIn(keptDirs(flags.config.core.toplevel));
    interrupted.rerun = 'the next start resumes';
    throw interrupted;
  }
}
