/**
 * Brings one replica repository to the state the origin published, or
 * leaves it as it was. The order is what makes that true:
 *
 *   index.json -> choose bundles -> download + verify (sha256, size) ->
 *   check prerequisites -> unbundle (objects only) -> connectivity check ->
 *   one ref transaction -> HEAD -> git fetch for any gap -> fingerprint.
 *
 * Refs move in a single `update-ref --stdin` transaction after every object
 * they need is present, so a failure before it leaves the old refs; a new
 * repository is built in a staging directory and renamed into place only
 * when complete.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BundlemirrorError } from '../../errors.js';
import { confinedAbsolute } from '../../fs/confined.js';
import {
  fetchMirror,
  fingerprint,
  initBare,
  protectMirror,
  parseShowRef,
  type MirrorConfig,
  updateRefs,
  type Ref,
  refUpdatesTo,
} from '../../git/repo.js';
import type { ManifestEntry } from '../../manifest/manifest.js';
import type { RepoIndex } from '../../manifest/repo-index.js';
import { isBareRepository } from '../../git/discovery.js';
import { indexUrl } from '../../manifest/tree.js';
import { ensureStore, linkToStore, storeDir, syncVirtualRefs, unsafeForkgroup, usesStore } from './objstore.js';
import { applyMetadata, wantedMetadata } from './metadata.js';
import { emptyHooksDir, repoDir, stagingDir } from '../paths.js';
import { removeCrashDebris } from './crash-debris.js';
import { syncLfsObjects } from './lfs-objects.js';
import { configGet, configSet } from '../../git/repo.js';
import { transferPolicy, treeRedirects, type SyncContext, type SyncResult } from './sync-context.js';
import { fetchIndex, onDemandSource, type BundleSource } from './index-source.js';
import { applyFromBundles, dropCachedBundles } from './apply-bundles.js';

export type { SyncResult } from './sync-context.js';

export async function syncRepo(path: string, entry: ManifestEntry, ctx: SyncContext): Promise<SyncResult> {
  const dir = await repoDir(ctx.toplevel, path);
  const exists = await isBareRepository(dir);
  const result: SyncResult = {
    path,
    outcome: exists ? 'updated' : 'cloned',
    fingerprint: '',
    via: 'none',
    bundles: [],
    bytesDownloaded: 0,
    bytesResumed: 0,
    metadataChanged: [],
    lfs: null,
  };
  const want = wantedMetadata(entry, ctx.defaultOwner);

  const hooks = emptyHooksDir(ctx.toplevel);
  // the repository's config, read once: nothing this sync runs changes it but our own writes
  let config: MirrorConfig | undefined;
  // an existing repository's refs, which nothing but this sync moves (the caller holds the pull lock)
  let refsBefore: Ref[] | null = null;
  if (exists) {
    // adoption: a repository made by an older version, by grokmirror or by hand gets the same protection as a new one
    // (show-ref runs meanwhile: it reads refs only, and runs no hook either)
    const [protectedConfig, local] = await Promise.all([protectMirror(dir, hooks, path), fingerprint(dir, path)]);
    config = protectedConfig;
    refsBefore = local.refs;
    if (entry.fingerprint && local.fingerprint === entry.fingerprint) {
      result.metadataChanged = await applyMetadata(dir, want, path, config);
      // git is complete; LFS objects a run cut short are still owed
      if (ctx.lfs !== false && ctx.bundlesBase) {
        const index = await fetchIndex(path, entry, ctx);
        if (index) await applyLfs(dir, path, index, ctx, result);
      }
      return { ...result, outcome: 'unchanged', fingerprint: local.fingerprint };
    }
  }

  const work = exists ? dir : join(stagingDir(ctx.toplevel), `${randomBytes(6).toString('hex')}.git`);
  // the index is on its way while git makes the new repository, or the debris below goes
  const fetchingIndex = ctx.bundlesBase ? fetchIndex(path, entry, ctx) : Promise.resolve(null);
  fetchingIndex.catch(() => {}); // awaited below, inside the try that cleans up
  // a git killed mid-way leaves temporary packs, and ref locks that block every later update (crash-debris.ts)
  if (exists) await removeCrashDebris(dir);
  const store = await sharedStore(path, entry, ctx);
  if (!exists) {
    await mkdir(dirname(work), { recursive: true });
    await initBare(work, path);
    config = await protectMirror(work, hooks, path);
    if (store) await linkToStore(work, store);
  }
  // a repository mirrored before it joined a forkgroup keeps its own objects
  const shared = store && (await usesStore(work, store)) ? store : null;
  // members of a group sync one after the other: debris in the store is from a killed run
  if (shared) await removeCrashDebris(shared);
  try {
    const originIndex = await fetchingIndex;
    let source: BundleSource | null = originIndex
      ? { index: originIndex, indexUrl: indexUrl(ctx.bundlesBase!, path), root: ctx.bundlesBase! }
      : null;
    // a new repository the origin publishes no bundles for (a grokmirror origin): let the service bundle it
    // (not for a replica that accepts signed indexes only: the service signs nothing)
    if (!source && !exists && ctx.onDemand && ctx.site && !ctx.allowedSigners) source = await onDemandSource(path, ctx);
    const refsSet = source ? await applyFromBundles(work, shared, path, source, refsBefore, ctx, result) : false;
    // LFS and the fingerprint check below are about the origin's own index
    const index = originIndex;

    let after = await fingerprint(work, path);
    let fp = after.fingerprint;
    if (entry.fingerprint !== fp || !source) {
      if (!ctx.site) {
        throw new BundlemirrorError(
          'E_FINGERPRINT',
          `bundles brought fingerprint ${fp}, the manifest says ${entry.fingerprint ?? 'none'}, and no git URL is set to fetch the rest`,
          {
            repo: path,
            hint: "set [bundlemirror] git_url (or [remote] site) to the origin's git URL over the network so bundlemirror can close the gap with git fetch",
          },
        );
      }
      const url = ctx.site.replace(/\/+$/, '') + path;
      ctx.log.debug(`${path}: git fetch ${url} to close the gap`);
      const before = ctx.allowedSigners && exists ? after.refs : null;
      await fetchMirror(work, url, { prune: true, repo: path, signal: ctx.signal });
      result.via = result.via === 'bundles' ? 'bundles+fetch' : 'fetch';
      after = await fingerprint(work, path);
      fp = after.fingerprint;
      // git fetch is not signed: refs it brought that no signed document vouches for are put back as they were
      if (ctx.allowedSigners && fp !== entry.fingerprint && fp !== index?.fingerprint) {
        if (before) await restoreRefs(work, before, path); // (a new repository in staging is removed whole)
        throw new BundlemirrorError(
          'E_FINGERPRINT',
          `git fetch from ${url} brought fingerprint ${fp}, which neither the signed manifest (${entry.fingerprint ?? 'none'}) nor the signed index vouches for; refs restored`,
          {
            repo: path,
            hint: 'the git host serves other refs than the signed tree says (it may be ahead or tampered with); the next pull tries again',
          },
        );
      }
    }
    result.metadataChanged = await applyMetadata(work, want, path, config);
    result.fingerprint = fp;
    // the store already records these refs when they are the ones the bundles set (HEAD is no ref of show-ref's)
    if (shared && !(refsSet && source && sameRefs(after.refs, source.index.refs)))
      await syncVirtualRefs(shared, path, Object.fromEntries(after.refs.map((r) => [r.name, r.oid])));
    if (!exists) await moveIntoPlace(work, dir, path);
    // after the move: objects downloaded before a failure stay with the repository for the next run
    if (index && ctx.lfs !== false) await applyLfs(dir, path, index, ctx, result);
    if (entry.fingerprint && fp !== entry.fingerprint && fp !== index?.fingerprint) {
      throw new BundlemirrorError(
        'E_FINGERPRINT',
        `after sync the fingerprint is ${fp}, the manifest says ${entry.fingerprint}`,
        {
          repo: path,
          hint: 'the origin probably changed after publishing its manifest; the next pull verifies again',
        },
      );
    }
    if (!ctx.keepBundles) await dropCachedBundles(ctx.toplevel, result.bundles);
    return result;
  } catch (err) {
    if (!exists) await rm(work, { recursive: true, force: true });
    else await removeCrashDebris(dir);
    // a failed unbundle into the forkgroup store leaves its temp pack there (on a full disk: all the space)
    if (shared) await removeCrashDebris(shared);
    // a fingerprint mismatch still applied verified bundles: no need to download them again
    if (err instanceof BundlemirrorError && err.code === 'E_FINGERPRINT')
      await dropCachedBundles(ctx.toplevel, result.bundles);
    throw err;
  }
}

function sameRefs(refs: readonly Ref[], wanted: Readonly<Record<string, string>>): boolean {
  return (
    refs.length === Object.keys(wanted).length &&
    refs.every((r) => Object.hasOwn(wanted, r.name) && wanted[r.name] === r.oid)
  );
}

async function restoreRefs(work: string, before: Ref[], path: string): Promise<void> {
  const now = parseShowRef((await fingerprint(work, path)).raw);
  await updateRefs(work, refUpdatesTo(now, new Map(before.map((r) => [r.name, r.oid]))), path);
}

/**
 * Downloads the LFS objects the index lists into the repository's own
 * store, and records where the master is (`bundlemirror.master`), so a
 * `serve` of this replica can say where uploads and locks go.
 */
async function applyLfs(
  dir: string,
  path: string,
  index: RepoIndex,
  ctx: SyncContext,
  result: SyncResult,
): Promise<void> {
  if (!index.lfs || index.lfs.objects.length === 0) return;
  const got = await syncLfsObjects({
    toplevel: ctx.toplevel,
    dir,
    path,
    index,
    indexUrl: indexUrl(ctx.bundlesBase!, path),
    redirects: treeRedirects(ctx, path),
    retries: ctx.retries,
    signal: ctx.signal,
    ...transferPolicy(path, ctx),
    onProgress: ctx.onProgress ? (file, p) => ctx.onProgress!(path, file, p) : undefined,
  });
  result.lfs = { listed: got.listed, downloaded: got.downloaded };
  result.bytesDownloaded += got.bytesDownloaded;
  result.bytesResumed += got.bytesResumed;
  if (ctx.site) {
    const master = ctx.site.replace(/\/+$/, '') + path;
    if ((await configGet(dir, 'bundlemirror.master', path)) !== master)
      await configSet(dir, 'bundlemirror.master', master, path);
  }
}

/** The forkgroup store this repository shares objects through, created on first use. */
async function sharedStore(path: string, entry: ManifestEntry, ctx: SyncContext): Promise<string | null> {
  if (!ctx.objstore || !entry.forkgroup) return null;
  const store = storeDir(ctx.objstore, entry.forkgroup);
  if (!store) {
    ctx.log.warn(unsafeForkgroup(path, entry.forkgroup).describe());
    return null;
  }
  await confinedAbsolute(ctx.toplevel, store, { repo: path, what: 'the forkgroup store' });
  await ensureStore(store);
  await protectMirror(store, emptyHooksDir(ctx.toplevel), path);
  return store;
}

async function moveIntoPlace(work: string, dir: string, path: string): Promise<void> {
  await mkdir(dirname(dir), { recursive: true });
  try {
    await rename(work, dir);
  } catch (err) {
    throw new BundlemirrorError('E_DISK', `cannot move the new repository into ${dir}: ${(err as Error).message}`, {
      repo: path,
      cause: err,
    });
  }
}
