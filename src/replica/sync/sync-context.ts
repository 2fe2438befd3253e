/**
 * What a sync of one repository is told (`SyncContext`) and what it reports
 * (`SyncResult`). The context is built from a replica config in one place so
 * that `pull`, `fsck` (re-bootstrapping a corrupt repository) and `import`
 * (applying an offline kit) sync a repository exactly the same way.
 */
import type { ManifestEntry } from '../../manifest/manifest.js';
import type { DownloadProgress } from '../../transfer/download.js';
import type { MirrorSet } from '../../transfer/mirrors.js';
import type { RedirectRule } from '../../transfer/http.js';
import type { RetryWait } from '../../transfer/retry-policy.js';
import type { PullConfig } from '../config/config.js';
import type { StateStore } from '../state.js';

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

export interface SyncLog {
  info(msg: string): void;
  debug(msg: string): void;
  warn(msg: string): void;
}

export interface SyncContext {
  toplevel: string;
  /** Base URL for git fetches (`[remote] site`); the repository path is appended. */
  site: string | null;
  /** URL of the published tree's root, or null for an origin without bundles. */
  bundlesBase: string | null;
  /** `[bundlemirror] redirects`: where else a redirect of an index or a bundle may lead. */
  redirects?: readonly string[];
  defaultOwner: string | null;
  /** `[core] objstore`: where forkgroup members share their objects; null to store every repository on its own. */
  objstore?: string | null;
  log: SyncLog;
  onProgress?: (repo: string, file: string, p: DownloadProgress) => void;
  retries?: number;
  /** `[pull] retry_for` (or --retry-for): how long downloads wait out a failing server. */
  retryForMs?: number | undefined;
  /** Other hosts of the published tree: downloads fail over between them and resume the same partial. */
  mirrors?: MirrorSet | undefined;
  /** Told when a download or index fetch waits before trying again. */
  onWait?: ((repo: string, w: RetryWait) => void) | undefined;
  signal?: AbortSignal;
  /** Download the LFS objects the index lists (default true; `[pull] lfs = no` turns it off). */
  lfs?: boolean;
  /** `[remote] allowed_signers`: index.json must be signed by a key it lists; null or absent: no check. */
  allowedSigners?: string | null;
  /** Publish time of the signed manifest being acted on: an index older than it must agree with it. */
  manifestPublished?: string | null;
  /** Leave applied bundles in the cache (a tier copy links them into its tree instead of downloading them again). */
  keepBundles?: boolean;
  /** Told each index.json read (and its signature, when it was verified): a tier copy uses them instead of asking again. */
  onIndex?: (path: string, bytes: Buffer, signature: Buffer | undefined) => void;
  /** `[remote] on_demand`: a service that bundles `site + path` for a new repository the origin has no index for. */
  onDemand?: string | null | undefined;
}

export interface SyncResult {
  path: string;
  outcome: 'cloned' | 'updated' | 'unchanged';
  fingerprint: string;
  via: 'bundles' | 'fetch' | 'bundles+fetch' | 'none';
  bundles: string[];
  bytesDownloaded: number;
  bytesResumed: number;
  metadataChanged: string[];
  /** LFS objects the index lists, and how many this sync downloaded; null when none were looked at. */
  lfs: { listed: number; downloaded: number } | null;
}

/** The retry settings every request for this repository shares. */
export function transferPolicy(
  path: string,
  ctx: SyncContext,
): { retryForMs: number | undefined; onWait: ((w: RetryWait) => void) | undefined } {
  return { retryForMs: ctx.retryForMs, onWait: ctx.onWait ? (w) => ctx.onWait!(path, w) : undefined };
}

/** Every hop of a redirect for an index or a bundle stays under the published tree (or a configured place). */
export function treeRedirects(ctx: SyncContext, repo: string): RedirectRule {
  return { roots: [ctx.bundlesBase!, ...(ctx.redirects ?? [])], repo };
}
