/**
 * What `publish` does once its flags are known, whoever read them: commander
 * (publish.ts, with `-c FILE` merged in) or, for the command line a
 * post-receive hook runs, publish-argv.ts. Nothing here loads commander, so
 * the hook's CommonJS copy (publish-cached.ts) need not either.
 */
import { resolve } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { publish } from '../origin/publish.js';
import { MAX_PACK_PARTS, MAX_SLICES } from '../manifest/repo-index.js';
import { fnmatch } from '../glob/fnmatch.js';
import { formatBytes } from '../format/bytes.js';
import { notifierFor } from './publish-notify.js';
import { publishTarget, type StoreFlags } from './publish-target.js';
import { removeRepositories } from './publish-remove.js';
import { publishExitStatus, publishJsonReport } from '../origin/publish-json.js';
import { safeJson } from '../format/untrusted.js';

/** What `registerPublish`'s commander options parse into (commander's camelCase names). */
export interface PublishFlags extends StoreFlags {
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

export async function runPublish(repos: string[], flags: PublishFlags): Promise<void> {
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
