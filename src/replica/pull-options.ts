/**
 * What `pull` is asked to do and what it reports: shared by the run (pull.ts),
 * the manifest poll, the actions it carries out and the copy for the next tier.
 */
import type { BundlemirrorError } from '../errors.js';
import type { MirrorSet } from '../transfer/mirrors.js';
import type { DownloadProgress } from '../transfer/download.js';
import type { RetryWait } from '../transfer/retry-policy.js';
import type { SyncPlan } from './plan/planner.js';
import type { PullLog } from './log.js';

export interface PullOptions {
  force?: boolean;
  /** grok-pull -n: fetch the manifest without validators and look at every entry, skipping only verified repositories. */
  noMtimeCheck?: boolean;
  /** false for --no-purge; true for -p/--purge (grok-pull's: purge even where the config does not say so). */
  purge?: boolean;
  forcePurge?: boolean;
  log: PullLog;
  onProgress?: (repo: string, file: string, p: DownloadProgress) => void;
  /** Told when a request waits before trying again; `repo` is null for the manifest. */
  onWait?: (repo: string | null, w: RetryWait) => void;
  /** --retry-for: overrides `[pull] retry_for`. */
  retryForMs?: number;
  /** The hosts of the published tree (`[remote] mirrors`), shared by every request of the run; made by pull(). */
  mirrors?: MirrorSet;
  signal?: AbortSignal;
  /**
   * Pull only these manifest paths (a push notification). Implies `partial`:
   * the notified repositories changed even if the manifest looks unchanged.
   */
  only?: readonly string[];
  /**
   * The part of the collection this run is responsible for (a daemon
   * schedule group): repositories outside it are neither synced nor purged,
   * and keep their entries in the local manifest and projects.list.
   */
  scope?: (path: string) => boolean;
  /**
   * The run does not stand for a whole pass over the manifest: it skips the
   * "manifest unchanged" shortcut, and a manifest it downloads is kept
   * without validators, so the next full run still sees every change.
   */
  partial?: boolean;
}

export interface PullReport {
  manifestUnchanged: boolean;
  /** The manifest was read as an edit of the one the last complete run settled: how many entries changed, how many went. */
  manifestEdit: { changed: number; removed: number } | null;
  cloned: string[];
  updated: string[];
  unchanged: number;
  metadata: string[];
  purged: string[];
  failed: BundlemirrorError[];
  /** Refused without failing a repository (a manifest symlink the replica will not make). */
  warnings: BundlemirrorError[];
  problems: { path: string; problem: string }[];
  bytesDownloaded: number;
  bytesResumed: number;
  /**
   * Each repository this run cloned, updated or changed the metadata of: its
   * verified fingerprint and, when objects moved, how they came.
   */
  synced: Record<string, { fingerprint: string; via?: 'bundles' | 'fetch' | 'bundles+fetch' }>;
  plan?: SyncPlan;
}

/** A run that has done nothing yet: what every pull, and a stand-in for one, starts from. */
export function emptyPullReport(): PullReport {
  return {
    manifestUnchanged: false,
    manifestEdit: null,
    cloned: [],
    updated: [],
    unchanged: 0,
    metadata: [],
    purged: [],
    failed: [],
    warnings: [],
    problems: [],
    bytesDownloaded: 0,
    bytesResumed: 0,
    synced: {},
  };
}
