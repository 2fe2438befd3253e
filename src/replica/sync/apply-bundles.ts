/**
 * Applies the bundles an index offers: chooses them (plan/bundle-plan.ts),
 * downloads and verifies each, checks prerequisites, unbundles objects only
 * (a new repository's chain is indexed while it downloads: fresh-chain.ts),
 * and moves the refs in one transaction once every object they need is here
 * and connected. A gap is left for git fetch to close.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundleHeader } from '../../git/bundle.js';
import {
  existingObjects,
  fingerprint,
  fingerprintOf,
  formatShowRef,
  isConnected,
  parseShowRef,
  setInitialRefs,
  type Ref,
  unbundle,
  refUpdatesTo,
  updateRefs,
} from '../../git/repo.js';
import { bundleUrl } from '../../manifest/tree.js';
import type { BundleRef } from '../../manifest/repo-index.js';
import { downloadFile } from '../../transfer/download.js';
import { idsToCheck, planBundles } from '../plan/bundle-plan.js';
import { syncVirtualRefs } from './objstore.js';
import { bundleCacheDir, partialDir } from '../paths.js';
import { indexFreshChain, requirePrerequisites } from './fresh-chain.js';
import { connectedAbove } from '../../git/history.js';
import { transferPolicy, treeRedirects, type SyncContext, type SyncResult } from './sync-context.js';
import type { BundleSource } from './index-source.js';

/** How often a download's progress is shown (the downloader's own default). */
const PROGRESS_EVERY_MS = 250;

/**
 * `refsBefore`: an existing repository's refs as the sync read them (nothing
 * else moves them meanwhile); null for a new repository. Resolves true when
 * it set the refs to the index's (and recorded them in the forkgroup store),
 * false when it left them for git fetch.
 */
export async function applyFromBundles(
  work: string,
  shared: string | null,
  path: string,
  source: BundleSource,
  refsBefore: readonly Ref[] | null,
  ctx: SyncContext,
  result: SyncResult,
): Promise<boolean> {
  const { index } = source;
  const exists = refsBefore !== null;
  // a new forkgroup member already sees, through its store, the history its group shares
  const present = exists || shared ? await existingObjects(work, idsToCheck(index), path) : new Set<string>();
  // without a git URL to fetch from, a full base is the only way to the published state
  const choice = planBundles({ index, present, exists, allowBase: !ctx.site });
  let proved: string[] | null = null;
  ctx.log.debug(`${path}: ${choice.kind}: ${choice.reason}`);
  // the planner found a ref of the index missing and no bundle that brings it: git fetch closes the gap
  if (choice.kind === 'fetch') return false;
  if (choice.kind === 'bundles') {
    const redirects = source.root === ctx.bundlesBase ? treeRedirects(ctx, path) : { roots: [source.root], repo: path };
    const download = (b: BundleRef, onWritten?: () => void, signal = ctx.signal) => {
      // an indexer following the partial hears of every write (the last bytes reach index-pack while
      // the file is still being hashed and synced); the progress display keeps its own pace
      let shownAt = 0;
      return downloadFile({
        url: bundleUrl(source.indexUrl, b, path, source.root),
        redirects,
        dest: join(bundleCacheDir(ctx.toplevel), `${b.sha256}.bundle`),
        expectedSize: b.size,
        sha256: b.sha256,
        partialDir: partialDir(ctx.toplevel),
        retries: ctx.retries,
        signal,
        ...transferPolicy(path, ctx),
        ...(source.root === ctx.bundlesBase && ctx.mirrors ? { mirrors: ctx.mirrors, repo: path } : {}),
        onWrongHost: (root, err) =>
          ctx.log.warn(`${path}: ${root} served ${b.uri} wrong, skipped for it: ${err.message}`),
        progressIntervalMs: onWritten ? 0 : undefined,
        onProgress: (p) => {
          onWritten?.();
          const now = Date.now();
          if (!onWritten || p.received === p.total || now - shownAt >= PROGRESS_EVERY_MS) {
            shownAt = now;
            ctx.onProgress?.(path, b.uri, p);
          }
        },
      });
    };
    // a new repository of its own starts from a base: each bundle is indexed while the next downloads
    const fresh = !exists && !shared && choice.bundles[0]?.prerequisites.length === 0;
    if (fresh) {
      const chain = await indexFreshChain({
        work,
        path,
        bundles: choice.bundles,
        partialDir: partialDir(ctx.toplevel),
        cacheDir: bundleCacheDir(ctx.toplevel),
        download,
        signal: ctx.signal,
        log: ctx.log,
      });
      proved = chain.provedTips;
      result.bundles.push(...choice.bundles.map((b) => b.sha256));
      for (const got of chain.downloads) {
        result.bytesDownloaded += got.bytesDownloaded;
        result.bytesResumed += got.bytesResumed;
      }
    } else {
      for (const b of choice.bundles) {
        const got = await download(b);
        result.bundles.push(b.sha256);
        result.bytesDownloaded += got.bytesDownloaded;
        result.bytesResumed += got.bytesResumed;
      }
    }
    for (const b of fresh ? [] : choice.bundles) {
      const file = join(bundleCacheDir(ctx.toplevel), `${b.sha256}.bundle`);
      const header = await readBundleHeader(file);
      // (git itself refuses a bundle whose prerequisites are missing; this check names them, for the
      // ones the look-up above did not already find)
      await requirePrerequisites(
        work,
        b,
        header.prerequisites.filter((p) => !present.has(p)),
        path,
      );
      // Into the forkgroup store only when the store itself holds the prerequisites (a git fetch puts
      // objects in the member, and git refuses "Repository lacks these prerequisite commits"), and again
      // into the member when the result is still incomplete in the store (a tag-only bundle has no
      // prerequisite to check): the member sees both (test/reliability/regressions.test.ts).
      const store =
        shared !== null &&
        (await existingObjects(shared, header.prerequisites, path)).size === header.prerequisites.length
          ? shared
          : null;
      await unbundle(store ?? work, file, path, { signal: ctx.signal });
      if (
        store &&
        !(await isConnected(
          store,
          header.tips.map((tip) => tip.oid),
          path,
        ))
      )
        await unbundle(work, file, path, { signal: ctx.signal });
    }
    result.via = 'bundles';
  }
  // move refs only when everything the index names is here and connected: the walk fails on a missing
  // ref target as well as on missing history behind one. A new repository whose bundles were proved
  // connected one by one (fresh-chain.ts) walks only what the refs reach beyond the proved tips, not
  // the whole history again.
  const wanted = Object.values(index.refs);
  const connected = proved ? await connectedAbove(work, wanted, proved, path) : await isConnected(work, wanted, path);
  if (!connected) {
    // A ref's object is missing, or the tips are here but not all of their history: a bundle with a
    // short pack, or loose objects from a git fetch cut mid-way (unpack-objects writes as it
    // receives). Refs stay where they are and git fetch, which checks connectivity itself, brings the
    // rest; failing here instead failed every later run the same way
    // (test/reliability/regressions.test.ts).
    ctx.log.debug(`${path}: objects the published refs need are missing; git fetch closes the gap`);
    return false;
  }
  const refs = Object.entries(index.refs).map(([name, oid]) => ({ name, oid }));
  // a proved chain was indexed into a new repository: it has no refs yet; a new forkgroup member in
  // staging is asked (git init may have copied refs from a template)
  const current = proved ? [] : (refsBefore ?? parseShowRef((await fingerprint(work, path)).raw));
  // the store's copy of these refs first: what the member points at must never be prunable there
  if (shared) await syncVirtualRefs(shared, path, index.refs);
  // a proved chain's repository is new and in staging: its refs go straight into packed-refs, as git clone's do
  if (proved) await setInitialRefs(work, refs, path);
  else await updateRefs(work, refUpdatesTo(current, new Map(Object.entries(index.refs))), path);
  const fp = fingerprintOf(formatShowRef(refs));
  if (fp !== index.fingerprint) ctx.log.warn(`${path}: index.json refs do not hash to its own fingerprint`);
  return true;
}

/** Verified bundles are kept across a failed run (the next one reuses them) and dropped once applied. */
export async function dropCachedBundles(toplevel: string, shas: string[]): Promise<void> {
  await Promise.all(shas.map((sha) => rm(join(bundleCacheDir(toplevel), `${sha}.bundle`), { force: true })));
}
