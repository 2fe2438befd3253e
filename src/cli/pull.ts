import type { Command } from 'commander';
import { ExitStatus } from '../errors.js';
import { loadPullConfig } from '../replica/config/config.js';
import { createPullLog } from '../replica/log.js';
import { pull, type PullReport } from '../replica/pull.js';
import { fileLabel, progressBars } from './progress-bars.js';
import { keptDirs, untilInterrupted } from './interrupt.js';
import { formatBytes } from '../format/bytes.js';
import { BundlemirrorError } from '../errors.js';
import { runPullDaemon } from './pull-daemon.js';
import { retryForOption, waitMessages } from './wait-messages.js';


interface PullFlags {
  config: string;
  force?: boolean;
  purge: boolean;
  forcePurge?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  progress: boolean;
  daemon?: boolean;
  retryFor?: number;
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('mirror the repositories of a remote manifest into [core] toplevel (grokmirror config)')
    .requiredOption('-c, --config <file>', 'replica config (grokmirror.conf format)')
    .option('--force', 'check every repository even when its fingerprint matches')
    .option('--no-purge', 'do not purge repositories gone from the manifest, whatever the config says')
    .option('--force-purge', 'purge even above [pull] purgeprotect percent')
    .option('--no-progress', 'no progress bars or progress lines')
    .option('-v, --verbose', 'explain every decision')
    .option('-q, --quiet', 'print only warnings, errors and the summary')
    .option('--retry-for <duration>', 'keep retrying a failing server this long after the last byte arrived (30s, 10m, 1h; default [pull] retry_for, 5m)', retryForOption)
    .option('--daemon', 'keep running: pull every [pull] refresh seconds, at [schedule "NAME"] cron times, and on push notifications')
    .action(async (flags: PullFlags) => {
      const config = loadPullConfig(flags.config);
      // on a terminal, log lines go through the bars (printed above them); elsewhere progress lines go to the log
      const bars = flags.progress && !flags.quiet && !flags.daemon ? progressBars({ log: (l) => log.info(l) }) : null;
      const onTerminal = bars !== null && Boolean(process.stderr.isTTY);
      const consoleLevel = flags.quiet ? 'quiet' : flags.verbose ? 'debug' : 'info';
      const log = createPullLog({ file: config.core.log, level: config.core.loglevel, console: consoleLevel, ...(onTerminal ? { write: bars.log } : {}) });
      for (const w of config.warnings) if (w.kind !== 'unused' || flags.verbose) log.warn(w.message);
      if (flags.daemon) {
        if (flags.force) throw new BundlemirrorError('E_USAGE', '--force cannot be combined with --daemon', { hint: 'run a one-off pull --force first, then start the daemon' });
        return runPullDaemon({ config, log, purge: flags.purge, forcePurge: flags.forcePurge, retryForMs: flags.retryFor, progress: flags.progress });
      }
      let report: PullReport;
      try {
        report = await untilInterrupted(
          (signal) =>
            pull(config, {
              force: flags.force,
              purge: flags.purge,
              forcePurge: flags.forcePurge,
              log,
              signal,
              ...(flags.retryFor !== undefined ? { retryForMs: flags.retryFor } : {}),
              onWait: waitMessages((l) => log.warn(l)),
              onProgress: bars ? (repo, file, p) => bars.update(`${repo}\0${file}`, fileLabel(repo, file), p) : undefined,
            }),
          { keptIn: () => keptDirs(config.core.toplevel), rerun: 'rerun pull to resume' },
        );
      } finally {
        bars?.stop();
        await log.flush();
      }
      process.stdout.write(summary(report) + '\n');
      if (report.failed.length || report.problems.length || report.plan?.purgeBlocked) process.exitCode = ExitStatus.repoFailed;
      // files this user may not write are for the admin to fix (chown), as a configuration problem is
      if (report.failed.some((e) => e.code === 'E_PERMISSION')) process.exitCode = ExitStatus.usage;
    });
}

export function summary(r: PullReport): string {
  if (r.manifestUnchanged) return `manifest unchanged: ${r.unchanged} repositories in sync, nothing to do`;
  const parts = [
    `cloned ${r.cloned.length}`,
    `updated ${r.updated.length}`,
    `unchanged ${r.unchanged}`,
    ...(r.metadata.length ? [`metadata ${r.metadata.length}`] : []),
    ...(r.purged.length ? [`purged ${r.purged.length}`] : []),
    `failed ${r.failed.length + r.problems.length}`,
  ];
  return `${parts.join(', ')}; downloaded ${formatBytes(r.bytesDownloaded)}, saved ${formatBytes(r.bytesResumed)} by resuming`;
}
