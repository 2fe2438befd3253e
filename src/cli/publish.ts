import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { BundlemirrorError } from '../errors.js';
import { publish } from '../origin/publish.js';
import { DEFAULT_CHAIN_POLICY } from '../origin/chain.js';
import { MAX_PACK_PARTS, MAX_SLICES } from '../manifest/repo-index.js';
import { fnmatch } from '../glob/fnmatch.js';
import { formatBytes } from '../format/bytes.js';
import { notifierFor } from './publish-notify.js';
import { addStoreOptions, publishTarget, type StoreFlags } from './publish-target.js';
import { publishFlags } from './publish-settings.js';
import { removeRepositories } from './publish-remove.js';
import { publishExitStatus, publishJsonReport } from '../origin/publish-json.js';
import { safeJson } from '../format/untrusted.js';

interface PublishFlags extends StoreFlags {
  toplevel: string;
  bundles: string;
  /** --out, the old name of --bundles. */
  out?: string;
  baseUrl?: string;
  ignore: string[];
  wait: string;
  maxIncrementals: string;
  chainRatio: string;
  graceDays: string;
  slices: string;
  sliceMinMib: string;
  parts: string;
  partsMinMib: string;
  quiet?: boolean;
  json?: boolean;
  notify: string[];
  notifyTokenFile?: string;
  signKey?: string;
  remove?: boolean;
  force?: boolean;
}

export function registerPublish(program: Command): void {
  const cmd = program
    .command('publish')
    .description(
      'publish bare repositories as a static tree: manifest.js.gz, per-repository index.json, bundle-list and bundles',
    )
    .argument(
      '[repo...]',
      'publish only these repositories (disk path, e.g. $PWD from a hook, or manifest path like /pub/a.git)',
    )
    .option(
      '-c, --config <file>',
      'publish config: [publish] keys named as these flags (base_url = ...); flags given here win',
    )
    .option(
      '--config-check',
      'read the config, report every problem and the settings in effect, and exit (0: usable, 2: not)',
    )
    .option('-t, --toplevel <dir>', 'directory holding the bare repositories (any depth)')
    .option(
      '--bundles <dir>',
      'where to write the published tree (a directory serve --bundles serves, or s3://BUCKET/PREFIX)',
      'bundles',
    )
    .addOption(new Option('-o, --out <dir>', 'the old name of --bundles').hideHelp())
    .option('--base-url <url>', 'URL at which --bundles is served; bundle-list files then carry absolute URIs')
    .option('--ignore <glob>', 'leave out repositories whose manifest path matches (repeatable)', collect, [])
    .option('--wait <seconds>', 'how long to wait for another publish into the same --bundles', '300')
    .option(
      '--max-incrementals <n>',
      'incremental bundles on top of one base before a new base',
      String(DEFAULT_CHAIN_POLICY.maxIncrementals),
    )
    .option(
      '--chain-ratio <r>',
      'new base once incrementals add up to this fraction of the base',
      String(DEFAULT_CHAIN_POLICY.maxChainRatio),
    )
    .option(
      '--grace-days <d>',
      'how long superseded bundles stay listed and on disk',
      String(DEFAULT_CHAIN_POLICY.graceMs / 86_400_000),
    )
    .option(
      '--slices <n>',
      'publish a new base as a chain of n history slices, so a replica resolves one while the next downloads (1: one base)',
      String(DEFAULT_CHAIN_POLICY.slices),
    )
    .option(
      '--slice-min-mib <m>',
      'slice only repositories storing at least this many MiB',
      String((DEFAULT_CHAIN_POLICY.sliceMinBytes ?? 0) / 2 ** 20),
    )
    .option(
      '--parts <n>',
      "publish a new base's pack in up to n parts a replica indexes while the rest downloads (1: one piece)",
      String(DEFAULT_CHAIN_POLICY.parts),
    )
    .option(
      '--parts-min-mib <m>',
      'cut into parts only the bases of repositories storing at least this many MiB',
      String((DEFAULT_CHAIN_POLICY.partsMinBytes ?? 0) / 2 ** 20),
    )
    .option(
      '--sign-key <file>',
      'SSH private key: sign manifest.js.gz and every index.json (ssh-keygen -Y sign -n bundlemirror)',
    )
    .option('-q, --quiet', 'print only the summary and errors')
    .option('--json', 'print the report as JSON on stdout instead of the summary (implies --quiet)')
    .option(
      '-x, --remove',
      "take the repositories named as REPO out of the manifest (deleted from the toplevel; grok-manifest's -x), publishing nothing else",
    )
    .option('--force', 'with -x: remove even a repository still on disk (a full publish adds it back)')
    .option(
      '--notify <url>',
      'then tell this replica daemon which repositories changed, e.g. http://replica:8090/notify (repeatable)',
      collect,
      [],
    )
    .option('--notify-token-file <file>', "bearer token for --notify (the replicas' [bundlemirror] notify_token_file)")
    .action(async (repos: string[], _given: PublishFlags, cmd: Command) => {
      const flags = publishFlags<PublishFlags>(cmd);
      if (!flags) return;
      const baseUrl = flags.baseUrl ? checkBaseUrl(flags.baseUrl) : null;
      const notify = notifierFor(flags.notify, flags.notifyTokenFile);
      const quiet = !!flags.quiet || !!flags.json;
      const log = quiet ? undefined : (line: string) => process.stderr.write(line + '\n');
      const warn = (line: string) => process.stderr.write(`bundlemirror: warning: ${line}\n`);
      const target = await publishTarget(flags.out ?? flags.bundles, flags, log);
      if (flags.remove) {
        if (flags.json) throw new BundlemirrorError('E_USAGE', '--json reports a publish; -x/--remove has no report');
        return removeRepositories(repos, {
          toplevel: flags.toplevel,
          out: target.out,
          mirror: target.mirror,
          force: flags.force,
          signKey: flags.signKey ? resolve(flags.signKey) : null,
          lockWaitMs: number(flags.wait, '--wait') * 1000,
          log,
          warn,
        });
      }
      if (flags.force) throw new BundlemirrorError('E_USAGE', '--force goes with -x/--remove only');
      const report = await publish({
        toplevel: resolve(flags.toplevel),
        out: target.out,
        mirror: target.mirror,
        baseUrl,
        signKey: flags.signKey ? resolve(flags.signKey) : null,
        ignore: flags.ignore.length ? (p) => flags.ignore.some((g) => fnmatch(p, g)) : undefined,
        only: repos.length ? repos.map((r) => (r.startsWith('/') ? r : resolve(r))) : undefined,
        lockWaitMs: number(flags.wait, '--wait') * 1000,
        policy: {
          maxIncrementals: number(flags.maxIncrementals, '--max-incrementals'),
          maxChainRatio: number(flags.chainRatio, '--chain-ratio'),
          graceMs: number(flags.graceDays, '--grace-days') * 86_400_000,
          slices: count(flags.slices, '--slices', MAX_SLICES),
          sliceMinBytes: number(flags.sliceMinMib, '--slice-min-mib') * 2 ** 20,
          parts: count(flags.parts, '--parts', MAX_PACK_PARTS),
          partsMinBytes: number(flags.partsMinMib, '--parts-min-mib') * 2 ** 20,
        },
        log,
        warn,
      });
      for (const e of report.failed) process.stderr.write(`bundlemirror: ${e.describe()}\n`);
      // a missing LFS object is not a failure of the repository, but someone has to upload it
      if (quiet) {
        for (const r of report.lfs)
          for (const m of r.missing)
            process.stderr.write(
              `bundlemirror: ${r.path}: LFS object ${m.oid} (${m.size} bytes) is not in the origin's store; published without it\n`,
            );
      }
      const lfsAdded = report.lfs.flatMap((r) => r.added);
      const lfsMissing = report.lfs.reduce((n, r) => n + r.missing.length, 0);
      const lfsNote =
        (lfsAdded.length
          ? `; ${lfsAdded.length} LFS object(s) (${formatBytes(lfsAdded.reduce((n, o) => n + o.size, 0))})`
          : '') + (lfsMissing ? `; ${lfsMissing} LFS object(s) missing at the origin` : '');
      const bytes = report.changed.flatMap((c) => c.bundles).reduce((n, b) => n + b.size, 0);
      if (flags.json) process.stdout.write(safeJson(publishJsonReport(report), 1) + '\n');
      else
        process.stdout.write(
          `published ${report.changed.length} changed, ${report.unchanged.length} unchanged, ${report.removed.length} removed, ` +
            `${report.failed.length} failed; ${formatBytes(bytes)} of new bundles; manifest ${report.manifestWritten ? 'written' : 'unchanged'}` +
            `${report.gc?.deleted.length ? `; ${report.gc.deleted.length} old file(s) deleted` : ''}${lfsNote}${target.summary()}\n`,
        );
      await notify?.(
        report.changed.map((c) => c.path),
        quiet,
      );
      const status = publishExitStatus(report);
      if (status) process.exitCode = status;
    });
  addStoreOptions(cmd);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function number(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new BundlemirrorError('E_USAGE', `${flag} takes a non-negative number, not ${JSON.stringify(value)}`);
  return n;
}

/** A count from 1 to `max` (`--slices`, `--parts`). */
function count(value: string, flag: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new BundlemirrorError(
      'E_USAGE',
      `${flag} takes a whole number from 1 to ${max}, not ${JSON.stringify(value)}`,
    );
  return n;
}

function checkBaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.toString();
  } catch {
    /* fall through */
  }
  throw new BundlemirrorError('E_USAGE', `--base-url must be an http(s) URL, not ${JSON.stringify(url)}`);
}
