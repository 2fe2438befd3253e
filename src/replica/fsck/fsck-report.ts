/**
 * What `bundlemirror fsck` reports (`--json` prints it as is, and report
 * hooks read it): one entry per repository and object store, the counts,
 * and the problems of the run itself.
 */
import type { BundlemirrorError } from '../../errors.js';

export const FSCK_REPORT_VERSION = 1;

export type FsckError = { code: string; message: string; hint?: string };

export interface FsckRepoReport {
  /** Manifest path; for a forkgroup object store, its directory. */
  path: string;
  /** `objstore`: a forkgroup store whose objects its members borrow (not in the manifest). */
  kind: 'repository' | 'objstore';
  /** `ok`: healthy; `repaired`: was corrupt, rebuilt and verified; `broken`: still corrupt (see `error`). */
  outcome: 'ok' | 'repaired' | 'broken';
  /** What the check found (empty when healthy). */
  problems: string[];
  /** Fingerprint on disk after fsck; null if unreadable, and for stores. */
  fingerprint: string | null;
  /** How the repair got its objects. */
  repairedVia?: 'bundles' | 'fetch' | 'bundles+fetch' | 'none';
  repacked: boolean;
  /** The repack recomputed every delta (`full_repack_every`). */
  fullRepack?: boolean;
  /** Why it is still broken, or why the repack failed. */
  error?: FsckError;
}

export interface FsckReport {
  version: typeof FSCK_REPORT_VERSION;
  toplevel: string;
  counts: {
    checked: number;
    ok: number;
    repaired: number;
    broken: number;
    repacked: number;
    /** `--due`: repositories and stores left for a later run. */
    notDue: number;
  };
  /** Sorted by path. */
  repos: FsckRepoReport[];
  /** Problems of the run itself (the lock could not be taken, ...). */
  errors: FsckError[];
}

/** The report of a run from its per-repository entries. */
export function fsckReport(
  toplevel: string,
  entries: Iterable<FsckRepoReport>,
  errors: FsckError[],
  notDue = 0,
): FsckReport {
  const repos = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const count = (o: FsckRepoReport['outcome']) => repos.filter((r) => r.outcome === o).length;
  return {
    version: FSCK_REPORT_VERSION,
    toplevel,
    counts: {
      checked: repos.length,
      ok: count('ok'),
      repaired: count('repaired'),
      broken: count('broken'),
      repacked: repos.filter((r) => r.repacked).length,
      notDue,
    },
    repos,
    errors,
  };
}

/** True when the run leaves nothing broken and every requested repack succeeded. */
export function fsckSucceeded(report: FsckReport): boolean {
  return report.errors.length === 0 && report.repos.every((r) => r.outcome !== 'broken' && r.error === undefined);
}

export function describeError(e: BundlemirrorError): FsckError {
  return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
}

/** What a report hook gets: the counts and errors, and only the entries with something to say. */
export function reportWorthSending(report: FsckReport): FsckReport | null {
  const repos = report.repos.filter((r) => r.outcome !== 'ok' || r.error !== undefined);
  if (repos.length === 0 && report.errors.length === 0) return null;
  return { ...report, repos };
}
