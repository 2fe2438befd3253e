/**
 * `bundlemirror fsck`: git fsck every mirrored repository (or, with
 * `--due`, those whose turn has come), rebuild the corrupt ones from the
 * origin, optionally repack. Exit 1 when anything is still broken.
 */
import type { Command } from 'commander';
import { printable, safeJson } from '../format/untrusted.js';
import { BundlemirrorError, ExitStatus } from '../errors.js';
import { readPullConfig } from '../replica/config/config.js';
import { untilInterrupted } from './interrupt.js';
import { createPullLog } from '../replica/log.js';
import { runFsck } from '../replica/fsck/fsck.js';
import { fsckSucceeded, type FsckReport } from '../replica/fsck/fsck-report.js';

interface FsckFlags {
  config: string;
  repack?: boolean;
  repair: boolean;
  due?: boolean;
  connectivityOnly?: boolean;
  json?: boolean;
  wait: string;
  verbose?: boolean;
  quiet?: boolean;
}

export function registerFsck(program: Command): void {
  program
    .command('fsck')
    .description('check every mirrored repository with git fsck and rebuild corrupt ones from the origin')
    .argument('[repo...]', 'only these repositories (manifest path like /pub/a.git, or a directory under the toplevel)')
    .requiredOption('-c, --config <file>', 'replica config (grokmirror.conf format)')
    .option(
      '--due',
      'check only the repositories whose turn has come: each every [fsck] frequency days (for a daily timer)',
    )
    .option(
      '--repack',
      'then repack every healthy repository checked into one pack with a bitmap (git repack -a -d -b); default: [fsck] repack',
    )
    .option('--no-repack', 'do not repack, whatever [fsck] repack says')
    .option(
      '--connectivity-only',
      'git fsck --connectivity-only: only that every object refs reach is there (no hashing); default: [fsck] connectivity_only',
    )
    .option('--no-repair', 'only report; leave corrupt repositories as they are')
    .option('--json', 'machine-readable report on stdout')
    .option('--wait <seconds>', 'how long to wait for a running pull before repairing or repacking', '300')
    .option('-v, --verbose', 'say something about every repository')
    .option('-q, --quiet', 'print only warnings, errors and the summary')
    .action(async (repos: string[], flags: FsckFlags) => {
      const wait = Number(flags.wait);
      if (!Number.isFinite(wait) || wait < 0)
        throw new BundlemirrorError('E_USAGE', `--wait takes a number of seconds, not ${JSON.stringify(flags.wait)}`);
      const config = await readPullConfig(flags.config);
      const log = createPullLog({
        file: config.core.log,
        level: config.core.loglevel,
        console: flags.quiet || flags.json ? 'quiet' : flags.verbose ? 'debug' : 'info',
      });
      // mail settings grok-fsck used are worth knowing about without -v: nothing is mailed
      for (const w of config.warnings) if (w.kind !== 'unused' || flags.verbose) log.warn(w.message);
      let report: FsckReport;
      try {
        report = await untilInterrupted((signal) =>
          runFsck(config, {
            repos,
            due: !!flags.due,
            repair: flags.repair,
            repack: flags.repack,
            connectivityOnly: flags.connectivityOnly ? true : undefined,
            lockWaitMs: wait * 1000,
            log,
            signal,
          }),
        );
      } finally {
        await log.flush();
      }
      process.stdout.write(flags.json ? safeJson(report, 1) + '\n' : renderFsckReport(report, !!flags.verbose));
      if (!fsckSucceeded(report)) process.exitCode = ExitStatus.repoFailed;
    });
}

export function renderFsckReport(r: FsckReport, verbose: boolean): string {
  const lines: string[] = [];
  for (const repo of r.repos) {
    if (repo.outcome === 'ok' && !repo.error && !verbose) continue;
    lines.push(
      `${repo.outcome.padEnd(8)}  ${repo.path}${repo.repairedVia ? ` (cloned again via ${repo.repairedVia})` : ''}`,
    );
    for (const p of repo.problems.slice(0, 5)) lines.push(`          found: ${p}`);
    if (repo.problems.length > 5) lines.push(`          ... and ${repo.problems.length - 5} more`);
    if (repo.error)
      lines.push(
        `          error: ${printable(repo.error.message)} [${repo.error.code}]${repo.error.hint ? `\n          hint: ${printable(repo.error.hint)}` : ''}`,
      );
  }
  for (const e of r.errors)
    lines.push(`error: ${printable(e.message)} [${e.code}]${e.hint ? `\n  hint: ${printable(e.hint)}` : ''}`);
  const c = r.counts;
  lines.push(
    `checked ${c.checked}: ok ${c.ok}, repaired ${c.repaired}, broken ${c.broken}${c.repacked ? `; repacked ${c.repacked}` : ''}${c.notDue ? `; not due ${c.notDue}` : ''}`,
  );
  return lines.join('\n') + '\n';
}
