/**
 * What `syncRepo` needs from a replica config, built in one place so that
 * `pull`, `fsck` (re-bootstrapping a corrupt repository) and `import`
 * (applying an offline kit) sync a repository exactly the same way.
 */
import type { DownloadProgress } from '../../transfer/download.js';
import type { RetryWait } from '../../transfer/retry-policy.js';
import type { MirrorSet } from '../../transfer/mirrors.js';
import type { ManifestEntry } from '../../manifest/manifest.js';
import type { PullConfig } from '../config/config.js';
import type { StateStore } from '../state.js';
import type { SyncContext, SyncLog, SyncResult } from './sync-repo.js';

export interface SyncContextOptions {
  log: SyncLog;
  onProgress?: ((repo: string, file: string, p: DownloadProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** Publish time of the signed manifest this run acts on (indexes older than it must match it). */
  manifestPublished?: string | null | undefined;
  /** --retry-for, over `[pull] retry_for`. */
  retryForMs?: number | undefined;
  /** The run's hosts of the published tree (`[remote] mirrors`). */
  mirrors?: MirrorSet | undefined;
  onWait?: ((repo: string, w: RetryWait) => void) | undefined;
}

export function syncContextFor(config: PullConfig, opts: SyncContextOptions): SyncContext {
  return {
    toplevel: config.core.toplevel,
    // an empty git_url means "no git fetch" (an offline import)
    site: config.bundlemirror.gitUrl || null,
    bundlesBase: config.bundlemirror.bundles,
    redirects: config.bundlemirror.redirects,
    defaultOwner: config.pull.defaultOwner || null,
    objstore: config.core.objstore,
    allowedSigners: config.remote.allowedSigners,
    // a published copy links the bundles this sync downloads instead of fetching them again
    keepBundles: config.publish.out !== null,
    manifestPublished: opts.manifestPublished ?? null,
    log: opts.log,
    onProgress: opts.onProgress,
    signal: opts.signal,
    lfs: config.pull.lfs,
    onDemand: config.remote.onDemand,
    retryForMs: opts.retryForMs ?? config.pull.retryForMs,
    onWait: opts.onWait,
    mirrors: opts.mirrors,
  };
}

/** Records a verified sync the way pull does. */
export async function recordSynced(
  state: StateStore,
  path: string,
  entry: ManifestEntry,
  res: SyncResult,
): Promise<void> {
  await state.recordSuccess(path, {
    fingerprint: res.fingerprint,
    head: entry.head ?? null,
    description: entry.description ?? null,
    owner: entry.owner ?? null,
    symlinks: entry.symlinks ?? [],
    appliedBundles: res.bundles,
  });
}
