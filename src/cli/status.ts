/**
 * `bundlemirror status`: one line per repository (or `--json`), from what
 * the replica already knows; no git process, no request unless --fetch.
 */
import type { Command } from 'commander';
import { readPullConfig } from '../replica/config/config.js';
import { replicaStatus, type ReplicaStatus, type RepoStatus } from '../replica/status.js';
import { renderMetrics } from '../replica/metrics.js';
import { formatBytes } from '../format/bytes.js';
import { safeJson } from '../format/untrusted.js';

interface StatusFlags {
  config: string;
  json?: boolean;
  metrics?: boolean;
  size: boolean;
  fetch?: boolean;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'show every repository of a replica: in sync, behind, failing (with the last error) or not cloned, size and last success',
    )
    .requiredOption('-c, --config <file>', 'replica config (grokmirror.conf format)')
    .option('--json', 'machine-readable output (see README: status --json)')
    .option('--metrics', 'Prometheus text format (for a node_exporter textfile collector)')
    .option('--no-size', 'do not measure objects/ of each repository')
    .option(
      '--fetch',
      'compare against the remote manifest downloaded now (one request) instead of the copy the last pull saved',
    )
    .action(async (flags: StatusFlags) => {
      const config = await readPullConfig(flags.config);
      const status = await replicaStatus(config, { sizes: flags.size, fetch: !!flags.fetch });
      process.stdout.write(
        flags.json ? safeJson(status, 1) + '\n' : flags.metrics ? renderMetrics(status) : renderStatusTable(status),
      );
    });
}

export function renderStatusTable(s: ReplicaStatus): string {
  const lines: string[] = [];
  const manifest =
    s.manifest.source === 'none'
      ? 'no remote manifest known yet (run pull, or status --fetch)'
      : `remote manifest ${s.manifest.source === 'fetched' ? 'fetched now' : `saved ${shortTime(s.manifest.savedAt)}`} (${s.manifest.repositories} selected)`;
  const lock = s.lock.held
    ? `pull running (pid ${s.lock.pid ?? '?'}${s.lock.startedAt ? `, since ${shortTime(s.lock.startedAt)}` : ''})`
    : 'no pull running';
  lines.push(`${s.toplevel}: ${manifest}; ${lock}${s.lastRun ? `; ${describeLastRun(s.lastRun)}` : ''}`);
  const signed = s.manifest.signed;
  if (signed) {
    const age = `published ${shortTime(signed.published)} (${formatAge(signed.ageSeconds)} ago), signed by ${signed.principal}`;
    lines.push(
      signed.stale
        ? `WARNING: the newest signed manifest accepted was ${age}, longer ago than [remote] manifest_max_age: the origin or the host this replica pulls from may have stopped (a frozen tree)`
        : `signed manifest ${age}`,
    );
  }
  const rows: string[][] = [['STATE', 'REPOSITORY', 'SIZE', 'LAST SUCCESS', 'NOTE']];
  for (const r of s.repos)
    rows.push([
      r.state,
      r.path,
      r.sizeBytes === null ? '-' : formatBytes(r.sizeBytes),
      r.lastSuccess ? shortTime(r.lastSuccess) : 'never',
      note(r),
    ]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const row of rows)
    lines.push(
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    );
  const c = s.counts;
  const extra = [
    c['not-in-manifest'] ? `not in manifest ${c['not-in-manifest']}` : '',
    c.unknown ? `unknown ${c.unknown}` : '',
  ].filter(Boolean);
  lines.push(
    `in sync ${c['in-sync']}, behind ${c.behind}, failing ${c.failing}, not cloned ${c['not-cloned']}${extra.length ? `, ${extra.join(', ')}` : ''}` +
      `${s.sizeBytes !== null ? `; ${formatBytes(s.sizeBytes)} of objects${s.objstoreBytes ? ` (${formatBytes(s.objstoreBytes)} in shared object stores)` : ''}` : ''}` +
      `${s.lfs?.objects ? `; ${s.lfs.objects} LFS object(s), ${formatBytes(s.lfs.bytes)}` : ''}`,
  );
  return lines.join('\n') + '\n';
}

function describeLastRun(r: NonNullable<ReplicaStatus['lastRun']>): string {
  const when = `last pull ${shortTime(r.finishedAt)}`;
  switch (r.result) {
    case 'unchanged':
      return `${when}: the manifest was unchanged (the origin is quiet)`;
    case 'ok':
      return `${when}: ok, ${formatBytes(r.bytesDownloaded)} downloaded`;
    case 'interrupted':
      return `${when}: interrupted (the next pull resumes)`;
    case 'failed':
      return `${when}: ${r.failedRepositories} repositor${r.failedRepositories === 1 ? 'y' : 'ies'} failed${r.error ? ` (first: ${r.error.code})` : ''}`;
    case 'error':
      return `${when}: FAILED ${r.error ? `${r.error.code}: ${r.error.message.split('\n')[0]}` : ''}`;
  }
}

function describeDownload(d: { received: number; total: number; rate: number }): string {
  const pct = d.total > 0 ? Math.floor((d.received * 100) / d.total) : 100;
  return `${pct}% ${formatBytes(d.received)}/${formatBytes(d.total)}${d.rate > 0 ? ` at ${formatBytes(d.rate)}/s` : ''}`;
}

function note(r: RepoStatus): string {
  if (r.downloading.length) return `downloading ${r.downloading.map(describeDownload).join(', ')}`;
  if (r.state === 'in-sync') return '';
  if (r.state === 'failing' && r.lastError) {
    return `${r.lastError.code} at ${shortTime(r.lastError.at)}: ${r.lastError.message.split('\n')[0]}${r.failures > 1 ? ` (${r.failures} attempts)` : ''}`;
  }
  return r.reason;
}

function formatAge(seconds: number): string {
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 2 * 86_400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} days`;
}

/** `2026-11-22 10:00:01Z`: ISO without the T and the milliseconds. */
function shortTime(iso: string | null): string {
  if (!iso) return '?';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
