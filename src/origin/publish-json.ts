/**
 * `publish --json`: the run's report as one JSON document, for hooks and
 * scripts that must not parse the human summary. One entry per repository
 * (changed with its fingerprint and new bundles, unchanged, removed, or
 * failed with its error code), the totals, and the exit status.
 */
import { ExitStatus, type BundlemirrorError } from '../errors.js';
import type { PublishReport } from './publish.js';

export const PUBLISH_REPORT_VERSION = 1;

export interface PublishJsonRepo {
  /** Manifest path. */
  path: string;
  result: 'changed' | 'unchanged' | 'removed' | 'failed';
  /** Fingerprint published (changed). */
  fingerprint?: string;
  /** Bundles this run wrote for it (changed). */
  bundles?: { name: string; size: number; kind: 'base' | 'incremental' }[];
  error?: { code: string; message: string; hint?: string };
}

export interface PublishJsonReport {
  version: typeof PUBLISH_REPORT_VERSION;
  counts: { changed: number; unchanged: number; removed: number; failed: number };
  /** Sorted by path. */
  repos: PublishJsonRepo[];
  manifestWritten: boolean;
  bytes: { newBundles: number };
  /** Files gc deleted after their grace period; null when gc did not run. */
  gc: { deleted: number } | null;
  lfs: { added: number; addedBytes: number; missing: { path: string; oid: string; size: number }[] };
  exitStatus: number;
}

/** The status `publish` exits with: a bug outranks a failed repository. */
export function publishExitStatus(r: PublishReport): number {
  if (r.failed.some((e) => e.code === 'E_INTERNAL')) return ExitStatus.internal;
  return r.failed.length ? ExitStatus.repoFailed : ExitStatus.ok;
}

export function publishJsonReport(r: PublishReport): PublishJsonReport {
  const repos: PublishJsonRepo[] = [
    ...r.changed.map((c) => ({
      path: c.path,
      result: 'changed' as const,
      fingerprint: c.fingerprint,
      bundles: c.bundles.map((b) => ({ name: b.name, size: b.size, kind: b.kind })),
    })),
    ...r.unchanged.map((path) => ({ path, result: 'unchanged' as const })),
    ...r.removed.map((path) => ({ path, result: 'removed' as const })),
    ...r.failed.map((e) => ({ path: e.repo ?? '', result: 'failed' as const, error: jsonError(e) })),
  ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const added = r.lfs.flatMap((l) => l.added);
  return {
    version: PUBLISH_REPORT_VERSION,
    counts: {
      changed: r.changed.length,
      unchanged: r.unchanged.length,
      removed: r.removed.length,
      failed: r.failed.length,
    },
    repos,
    manifestWritten: r.manifestWritten,
    bytes: { newBundles: r.changed.flatMap((c) => c.bundles).reduce((n, b) => n + b.size, 0) },
    gc: r.gc ? { deleted: r.gc.deleted.length } : null,
    lfs: {
      added: added.length,
      addedBytes: added.reduce((n, o) => n + o.size, 0),
      missing: r.lfs.flatMap((l) => l.missing.map((m) => ({ path: l.path, oid: m.oid, size: m.size }))),
    },
    exitStatus: publishExitStatus(r),
  };
}

function jsonError(e: BundlemirrorError): { code: string; message: string; hint?: string } {
  return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
}
