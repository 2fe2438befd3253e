/**
 * `pull --json`: the run's report as one JSON document, for scripts and
 * monitoring that must not parse the human summary. One entry per
 * repository the run did something to (unchanged ones are counted, not
 * listed), the totals, and the exit status the command ends with.
 */
import { ExitStatus, type BundlemirrorError } from '../errors.js';
import type { PullReport } from './pull-options.js';

export const PULL_REPORT_VERSION = 1;

export interface PullJsonError {
  code: string;
  message: string;
  hint?: string;
}

export interface PullJsonRepo {
  /** Manifest path. */
  path: string;
  /** `problem`: a manifest entry refused, or a repository the plan would not touch (kept, not purged). */
  action: 'cloned' | 'updated' | 'metadata' | 'purged' | 'failed' | 'problem';
  /** Verified fingerprint after the run (cloned, updated, metadata). */
  fingerprint?: string;
  /** How the objects came (cloned, updated): bundles, git fetch, or both. */
  via?: 'bundles' | 'fetch' | 'bundles+fetch';
  /** Why it failed (`failed`). */
  error?: PullJsonError;
  /** What is wrong (`problem`). */
  problem?: string;
}

export interface PullJsonReport {
  version: typeof PULL_REPORT_VERSION;
  toplevel: string;
  /** `edit`: the manifest was read as an edit of the last settled one (null: unchanged, or read whole). */
  manifest: { url: string; unchanged: boolean; edit: { changed: number; removed: number } | null };
  counts: {
    cloned: number;
    updated: number;
    unchanged: number;
    metadata: number;
    purged: number;
    /** Failed repositories and problems, as the summary counts them. */
    failed: number;
  };
  /** Sorted by path. */
  repos: PullJsonRepo[];
  /** Refused without failing a repository (a manifest symlink the replica will not make). */
  warnings: (PullJsonError & { path?: string })[];
  /** Purging was stopped by [pull] purgeprotect: nothing was purged. */
  purgeBlocked: { paths: string[]; percent: number; limit: number; message: string } | null;
  bytes: { downloaded: number; resumed: number };
  exitStatus: number;
}

/** The status `pull` exits with: a bug outranks ownership to fix, which outranks a failed repository. */
export function pullExitStatus(r: PullReport): number {
  if (r.failed.some((e) => e.code === 'E_INTERNAL')) return ExitStatus.internal;
  // files this user may not write are for the admin to fix (chown), as a configuration problem is
  if (r.failed.some((e) => e.code === 'E_PERMISSION')) return ExitStatus.usage;
  if (r.failed.length || r.problems.length || r.plan?.purgeBlocked) return ExitStatus.repoFailed;
  return ExitStatus.ok;
}

export function pullJsonReport(r: PullReport, where: { toplevel: string; manifest: string }): PullJsonReport {
  const repos: PullJsonRepo[] = [];
  const synced = (action: PullJsonRepo['action'], paths: string[]) => {
    for (const path of paths) repos.push({ path, action, ...r.synced[path] });
  };
  synced('cloned', r.cloned);
  synced('updated', r.updated);
  synced('metadata', r.metadata);
  for (const path of r.purged) repos.push({ path, action: 'purged' });
  for (const e of r.failed) repos.push({ path: e.repo ?? '', action: 'failed', error: jsonError(e) });
  for (const p of r.problems) repos.push({ path: p.path, action: 'problem', problem: p.problem });
  repos.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const blocked = r.plan?.purgeBlocked;
  return {
    version: PULL_REPORT_VERSION,
    toplevel: where.toplevel,
    manifest: { url: where.manifest, unchanged: r.manifestUnchanged, edit: r.manifestEdit },
    counts: {
      cloned: r.cloned.length,
      updated: r.updated.length,
      unchanged: r.unchanged,
      metadata: r.metadata.length,
      purged: r.purged.length,
      failed: r.failed.length + r.problems.length,
    },
    repos,
    warnings: r.warnings.map((w) => ({ ...(w.repo ? { path: w.repo } : {}), ...jsonError(w) })),
    purgeBlocked: blocked
      ? { paths: blocked.paths, percent: blocked.percent, limit: blocked.limit, message: blocked.message }
      : null,
    bytes: { downloaded: r.bytesDownloaded, resumed: r.bytesResumed },
    exitStatus: pullExitStatus(r),
  };
}

function jsonError(e: BundlemirrorError): PullJsonError {
  return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
}
