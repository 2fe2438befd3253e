/**
 * `bundlemirror pull`. Its usual command lines skip commander altogether
 * (pull-argv.ts, called by main.ts); commander parses the rest, and --help.
 */
import type { Command } from 'commander';
import { readPullConfig } from '../replica/config/config.js';
import { createPullLog } from '../replica/log.js';
import { pull, type PullReport } from '../replica/pull.js';
import { fileLabel, progressBars } from './progress-bars.js';
import { keptDirs, untilInterrupted } from './interrupt.js';
import { formatBytes } from '../format/bytes.js';
import { BundlemirrorError } from '../errors.js';
import { retryForOption, waitMessages } from './wait-messages.js';
import { pullExitStatus, pullJsonReport } from '../replica/pull-json.js';
import { safeJson } from '../format/untrusted.js';
import type { PullFlags } from './pull-argv.js';
export { pullFlagsFromArgv } from './pull-argv.js';

const GROK_PULL_HELP = `
grok-pull's flags: -v, -n, -o, -p, --force-purge and -c mean here what they mean there.
Older ones are refused with what to use instead: -y (the local manifest is written as grokmirror
writes it), -r (existing repositories are always adopted), -m and -s (bundlemirror status --fetch,
bundlemirror fsck REPO...), -l ([core] log in the config).`;

/** grok-pull 1.x flags that have no meaning here: say what does the job instead of failing on an unknown option. */
function refuseGrokPullOnly(flags: PullFlags): void {
  const instead: [boolean, string, string][] = [
    [!!flags.pretty, '-y/--pretty', 'the local manifest is written as grokmirror writes it; drop -y'],
    [
      !flags.reuseExistingRepos,
      '-r/--no-reuse-existing-repos',
      'existing repositories are always adopted and verified by fingerprint; drop -r',
    ],
    [
      !!flags.verifyMirror,
      '-m/--verify-mirror',
      'run bundlemirror status -c CONFIG --fetch (compare) or bundlemirror fsck -c CONFIG (check objects)',
    ],
    [
      flags.verifySubpath !== undefined,
      '-s/--verify-subpath',
      'run bundlemirror fsck -c CONFIG REPO... for the repositories to check',
    ],
    [flags.logfile !== undefined, '-l/--logfile', 'set [core] log = FILE in the config'],
  ];
  for (const [given, flag, hint] of instead) {
    if (given)
      throw new BundlemirrorError('E_USAGE', `grok-pull's ${flag} has no bundlemirror equivalent flag`, { hint });
  }
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('mirror the repositories of a remote manifest into [core] toplevel (grokmirror config)')
    .requiredOption('-c, --config <file>', 'replica config (grokmirror.conf format)')
    .option('--force', 'check every repository even when its fingerprint matches')
    .option('-p, --purge', "purge repositories gone from the manifest even where [pull] purge is off (grok-pull's -p)")
    .option('--no-purge', 'do not purge repositories gone from the manifest, whatever the config says')
    .option('-n, --no-mtime-check', "fetch the manifest even if unchanged and look at every entry (grok-pull's -n)")
    .option('--force-purge', 'purge even above [pull] purgeprotect percent')
    .option('--no-progress', 'no progress bars or progress lines')
    .option('-v, --verbose', 'explain every decision')
    .option('-q, --quiet', 'print only warnings, errors and the summary')
    .option('--json', 'print the report as JSON on stdout instead of the summary (implies --quiet and --no-progress)')
    .option(
      '--retry-for <duration>',
      'keep retrying a failing server this long after the last byte arrived (30s, 10m, 1h; default [pull] retry_for, 5m)',
      retryForOption,
    )
    .option(
      '--daemon',
      'keep running: pull every [pull] refresh seconds, at [schedule "NAME"] cron times, and on push notifications',
    )
    .option(
      '-o, --continuous',
      "grok-pull's name for --daemon (with no [pull] refresh it runs once, as grok-pull does)",
    )
    .option('--config-check', 'read the config, report every problem and exit (0: usable, 2: not)')
    .addOption(program.createOption('-y, --pretty').hideHelp())
    .addOption(program.createOption('-r, --no-reuse-existing-repos').hideHelp())
    .addOption(program.createOption('-m, --verify-mirror').hideHelp())
    .addOption(program.createOption('-s, --verify-subpath <glob>').hideHelp())
    .addOption(program.createOption('-l, --logfile <file>').hideHelp())
    .addHelpText('after', GROK_PULL_HELP)
    .action(runPull);
}

/** The command itself, with the flags as commander or pull-argv.ts parsed them. */
export async function runPull(flags: PullFlags): Promise<void> {
  refuseGrokPullOnly(flags);
  const config = await readPullConfig(flags.config);
  if (flags.configCheck) {
    for (const w of config.warnings) process.stderr.write(`bundlemirror: warning: ${w.message}\n`);
    process.stdout.write(
      `${flags.config}: usable (${config.warnings.length} warning${config.warnings.length === 1 ? '' : 's'})\n`,
    );
    return;
  }
  // grok-pull -o runs once when the config sets no refresh interval
  if (flags.continuous && config.pull.refresh !== null) flags.daemon = true;
  // on a terminal, log lines go through the bars (printed above them); elsewhere progress lines go to the log
  const quiet = flags.quiet || flags.json;
  const bars = flags.progress && !quiet && !flags.daemon ? progressBars({ log: (l) => log.info(l) }) : null;
  const onTerminal = bars !== null && Boolean(process.stderr.isTTY);
  const consoleLevel = quiet ? 'quiet' : flags.verbose ? 'debug' : 'info';
  const log = createPullLog({
    file: config.core.log,
    level: config.core.loglevel,
    console: consoleLevel,
    ...(onTerminal ? { write: bars.log } : {}),
  });
  for (const w of config.warnings) if (w.kind !== 'unused' || flags.verbose) log.warn(w.message);
  if (flags.daemon) {
    if (flags.json)
      throw new BundlemirrorError('E_USAGE', '--json cannot be combined with --daemon', {
        hint: 'the daemon reports through its log and GET /metrics',
      });
    if (flags.force)
      throw new BundlemirrorError('E_USAGE', '--force cannot be combined with --daemon', {
        hint: 'run a one-off pull --force first, then start the daemon',
      });
    // the daemon's scheduler, listener and metrics are loaded only for it
    const { runPullDaemon } = await import('./pull-daemon.js');
    return runPullDaemon({
      config,
      log,
      purge: flags.purge,
      forcePurge: flags.forcePurge,
      retryForMs: flags.retryFor,
      progress: flags.progress,
    });
  }
  let report: PullReport;
  try {
    report = await untilInterrupted(
      (signal) =>
        pull(config, {
          force: flags.force,
          noMtimeCheck: !flags.mtimeCheck,
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
  process.stdout.write(
    flags.json
      ? safeJson(pullJsonReport(report, { toplevel: config.core.toplevel, manifest: config.remote.manifest }), 1) + '\n'
      : summary(report) + '\n',
  );
  const status = pullExitStatus(report);
  if (status) process.exitCode = status;
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
