/**
 * `[publish] out`: a replica that serves the next tier keeps a copy of the
 * origin's published files for what it mirrors, so that `bundlemirror serve
 * --bundles OUT --toplevel TOPLEVEL` is an origin for replicas further out
 * and every file still verifies against the origin's hashes and key.
 *
 * Per repository: every bundle the index names (the whole current chain and
 * the superseded one, even when this replica needed only an incremental)
 * and every LFS object it lists, then index.json.sig, index.json and bundle-list, each by atomic rename;
 * the manifest and its signature last, once every repository is copied.
 * Bundles and LFS objects come through src/transfer (resumable, verified);
 * those this replica's own sync just downloaded (its bundle cache, its
 * repositories' LFS stores) are hard-linked instead of fetched twice.
 *
 * What is byte-identical to the origin: bundles, index.json and its
 * signature always; the manifest and its signature when this replica
 * mirrors the whole manifest. A replica that mirrors a part (include,
 * exclude, refused entries) serves a manifest of just that part, which no
 * origin signature covers: it is written unsigned, its indexes stay signed.
 * bundle-list is derived from the index (as publish writes it without
 * --base-url); `serve` makes its URIs absolute for the requesting host.
 */
import { copyFile, link, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pLimit from 'p-limit';
import { BundlemirrorError, forRepo } from '../../errors.js';
import { removeStaleTemps, tempPathFor, writeFileAtomic, fsyncDir } from '../../fs/atomic.js';
import { lockPublishedTree } from '../../manifest/tree-lock.js';
import { renderBundleList } from '../../manifest/bundle-list.js';
import { serializeManifest, type Manifest } from '../../manifest/manifest.js';
import { BUNDLE_LIST_FILE, INDEX_FILE, parseRepoIndex, type RepoIndex } from '../../manifest/repo-index.js';
import { signatureOf } from '../../manifest/signature-files.js';
import { collectGarbage } from '../../manifest/gc.js';
import { signatureMatches } from '../../sign/ssh-keygen.js';
import { fetchDocument } from '../../transfer/document.js';
import { downloadFile } from '../../transfer/download.js';
import { bundleCacheDir, partialDir } from '../paths.js';
import { lfsObjectPath, lfsObjectRelPath } from '../../lfs/oid.js';
import { checkIndexAge } from '../sync/index-source.js';
import { treeRedirects, type SyncContext } from '../sync/sync-context.js';
import { bundleUrl, diskPathOf, indexUrl, MANIFEST_FILE } from '../../manifest/tree.js';
import { readDocument, readSignature, verifyFetched } from '../trusted-documents.js';

const MAX_INDEX_BYTES = 64 << 20;

export interface TierCopyOptions {
  out: string;
  graceMs: number;
  /** The remote manifest as fetched (and verified), its URL, and what it lists. */
  manifestUrl: string;
  manifestBytes: Buffer;
  remote: Manifest;
  /** Repositories to bring up to date in the copy (synced in this run, or whose copy lags). */
  repos: string[];
  /** Every repository of the remote manifest is selected by this replica: the origin's manifest can be served as it is. */
  whole: boolean;
  /**
   * The run left something out (a repository failed, or it covered only a
   * part: a notification, a schedule): the manifest is replaced only if
   * every repository's copy is already at its fingerprint; otherwise the
   * previous one stays, with indexes that may run ahead of it (as during a
   * publish at the origin).
   */
  anyFailed: boolean;
  /** Repositories the copy's manifest lists when it cannot be the origin's. */
  served: string[];
  /** index.json files this run's sync already read (with their signature when it verified them): not asked for again. */
  indexes?: ReadonlyMap<string, { bytes: Buffer; signature: Buffer | undefined }>;
  sync: SyncContext;
  concurrency: number;
}

export interface TierCopyReport {
  copied: string[];
  failed: BundlemirrorError[];
  bytesDownloaded: number;
  /** Bundles linked from this replica's own downloads instead of fetched again. */
  bundlesReused: number;
  manifest: 'origin' | 'subset' | 'kept' | 'unchanged';
}

export async function updatePublishedCopy(opts: TierCopyOptions): Promise<TierCopyReport> {
  const report: TierCopyReport = { copied: [], failed: [], bytesDownloaded: 0, bundlesReused: 0, manifest: 'kept' };
  const release = await lockPublishedTree(opts.out, { what: `the published copy in ${opts.out}`, waitMs: 60_000 });
  try {
    await removeStaleTemps(opts.out, undefined, { recursive: true });
    const limit = pLimit(opts.concurrency);
    // a forkgroup's members name their parent's bundles too: cached files go once every copy is placed
    const placed = new Set<string>();
    await Promise.all(
      opts.repos.map((path) =>
        limit(async () => {
          try {
            const r = await copyRepo(path, opts, placed);
            report.bytesDownloaded += r.bytesDownloaded;
            report.bundlesReused += r.reused;
            if (r.changed) report.copied.push(path);
          } catch (err) {
            if (opts.sync.signal?.aborted) throw err;
            report.failed.push(forRepo(err, path));
          }
        }),
      ),
    );
    report.copied.sort();
    await Promise.all([...placed].map((f) => rm(f, { force: true })));
    if (report.failed.length === 0) report.manifest = await writeManifest(opts);
    // as the origin's gc: only files no listed index names, and only after the grace period
    if (await stat(join(opts.out, MANIFEST_FILE)).catch(() => null))
      await collectGarbage(opts.out, { graceMs: opts.graceMs });
    return report;
  } finally {
    await release();
  }
}

async function everyCopyCurrent(out: string, remote: Manifest): Promise<boolean> {
  const reads = pLimit(16);
  const current = await Promise.all(
    Object.entries(remote).map(([p, e]) => reads(() => copyIsCurrent(out, p, e.fingerprint))),
  );
  return current.every(Boolean);
}

/** True when the copy already holds this repository at `fingerprint` (no request needed). */
export async function copyIsCurrent(
  out: string,
  path: string,
  fingerprint: string | null | undefined,
): Promise<boolean> {
  if (!fingerprint) return false;
  try {
    return parseRepoIndex(await readFile(join(diskPathOf(out, path), INDEX_FILE)), path).fingerprint === fingerprint;
  } catch {
    return false;
  }
}

async function copyRepo(
  path: string,
  opts: TierCopyOptions,
  placed: Set<string>,
): Promise<{ changed: boolean; bytesDownloaded: number; reused: number }> {
  const ctx = opts.sync;
  const fetched = await fetchIndexWithSignature(path, opts);
  if (!fetched) return { changed: false, bytesDownloaded: 0, reused: 0 }; // an origin without bundles for it: served by git alone
  const { index, bytes, signature } = fetched;
  const dir = diskPathOf(opts.out, path);
  const indexFile = join(dir, INDEX_FILE);
  const result = { changed: false, bytesDownloaded: 0, reused: 0 };

  // 1. every bundle the index names, each verified before it appears under its name
  const base = indexUrl(ctx.bundlesBase!, path);
  for (const b of index.bundles) {
    const url = bundleUrl(base, b, path, ctx.bundlesBase!);
    const dest = outPathOf(opts.out, ctx.bundlesBase!, url, path);
    const st = await stat(dest).catch(() => null);
    if (st?.isFile() && st.size === b.size) continue; // written here only after its sha256 matched
    const cached = join(bundleCacheDir(ctx.toplevel), `${b.sha256}.bundle`);
    const got = await downloadFile({
      url,
      redirects: treeRedirects(ctx, path),
      dest: cached,
      expectedSize: b.size,
      sha256: b.sha256,
      partialDir: partialDir(ctx.toplevel),
      retries: ctx.retries,
      signal: ctx.signal,
    });
    if (got.attempts === 0) result.reused += 1;
    result.bytesDownloaded += got.bytesDownloaded;
    await placeFile(cached, dest);
    placed.add(cached);
    result.changed = true;
  }

  // 1b. LFS objects published beside the index: from this replica's own store when it has them (a link), else downloaded
  for (const o of index.lfs?.objects ?? []) {
    const rel = lfsObjectRelPath(o.oid);
    const dest = diskPathOf(opts.out, path, ...rel.split('/'));
    const st = await stat(dest).catch(() => null);
    if (st?.isFile() && st.size === o.size) continue;
    const own = lfsObjectPath(diskPathOf(ctx.toplevel, path), o.oid);
    if ((await stat(own).catch(() => null))?.size === o.size) {
      await placeFile(own, dest);
      result.reused += 1;
    } else {
      const cached = join(bundleCacheDir(ctx.toplevel), `${o.oid}.lfs`);
      const got = await downloadFile({
        url: new URL(rel, base).toString(),
        redirects: treeRedirects(ctx, path),
        dest: cached,
        expectedSize: o.size,
        sha256: o.oid,
        partialDir: partialDir(ctx.toplevel),
        retries: ctx.retries,
        signal: ctx.signal,
      });
      result.bytesDownloaded += got.bytesDownloaded;
      await placeFile(cached, dest);
      placed.add(cached);
    }
    result.changed = true;
  }

  // 2. the index's signature before the index (a reader never pairs a new index with an old signature), then the index
  const current = await readFile(indexFile).catch(() => null);
  const currentSig = await readFile(signatureOf(indexFile)).catch(() => null);
  if (!current || !current.equals(bytes) || !sameBytes(currentSig, signature)) {
    if (signature) await writeFileAtomic(signatureOf(indexFile), signature);
    else await rm(signatureOf(indexFile), { force: true });
    await writeFileAtomic(indexFile, bytes);
    result.changed = true;
  }
  // 3. the bundle-list, derived from the index as publish derives it
  const list = renderBundleList(index.bundles, null);
  if ((await readFile(join(dir, BUNDLE_LIST_FILE), 'utf8').catch(() => null)) !== list)
    await writeFileAtomic(join(dir, BUNDLE_LIST_FILE), list);
  return result;
}

/**
 * index.json and its signature, as a pair that holds: verified against
 * allowed_signers when the replica has one, else at least checked to be a
 * signature of these bytes, so the copy never serves a pair that fails.
 */
async function fetchIndexWithSignature(
  path: string,
  opts: TierCopyOptions,
): Promise<{ index: RepoIndex; bytes: Buffer; signature: Buffer | null } | null> {
  const ctx = opts.sync;
  const url = indexUrl(ctx.bundlesBase!, path);
  const redirects = treeRedirects(ctx, path);
  const known = opts.indexes?.get(path);
  if (known?.signature)
    return { index: parseRepoIndex(known.bytes, path), bytes: known.bytes, signature: known.signature };
  let body: Buffer;
  if (known) body = known.bytes;
  else {
    try {
      const doc = await fetchDocument(url, { maxBytes: MAX_INDEX_BYTES, signal: ctx.signal, redirects });
      if (doc.status !== 'ok') return null;
      body = doc.body;
    } catch (err) {
      if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND') return null;
      throw err;
    }
  }
  if (ctx.allowedSigners) {
    const v = await verifyFetched(url, body, {
      allowedSigners: ctx.allowedSigners,
      what: 'index.json',
      maxBytes: MAX_INDEX_BYTES,
      repo: path,
      signal: ctx.signal,
      redirects,
    });
    const index = parseRepoIndex(v.body, path);
    // as for this replica's own sync: an older index that disagrees with the signed manifest is a replay
    const entry = opts.remote[path];
    if (entry) checkIndexAge(index, entry, ctx.manifestPublished ?? null, path);
    return { index, bytes: v.body, signature: v.signature };
  }
  for (let attempt = 0; ; attempt += 1) {
    const signature = await readSignature(url, { signal: ctx.signal, redirects });
    if (!signature || (await signatureMatches(body, signature)))
      return { index: parseRepoIndex(body, path), bytes: body, signature };
    if (attempt > 0) {
      throw new BundlemirrorError(
        'E_SIGNATURE_INVALID',
        `index.json at ${url} does not match the signature beside it`,
        {
          repo: path,
          hint: 'the copy keeps its previous files for this repository; the next pull tries again',
        },
      );
    }
    body = await readDocument(url, { maxBytes: MAX_INDEX_BYTES, signal: ctx.signal, redirects });
  }
}

async function writeManifest(opts: TierCopyOptions): Promise<TierCopyReport['manifest']> {
  const file = join(opts.out, MANIFEST_FILE);
  const current = await readFile(file).catch(() => null);
  // a run that covered everything without a failure, or else a copy that holds every repository at the manifest's fingerprint
  // (a daemon's notified or scheduled run): otherwise a reader could follow the manifest to an older index
  if (opts.anyFailed && !(opts.whole && (await everyCopyCurrent(opts.out, opts.remote)))) return 'kept';
  if (opts.whole) {
    const signature = await manifestSignature(opts);
    if (signature === undefined) return 'kept'; // the origin moved on between the two requests: next run
    if (
      current?.equals(opts.manifestBytes) &&
      sameBytes(await readFile(signatureOf(file)).catch(() => null), signature)
    )
      return 'unchanged';
    if (signature) await writeFileAtomic(signatureOf(file), signature);
    else await rm(signatureOf(file), { force: true });
    await writeFileAtomic(file, opts.manifestBytes);
    return 'origin';
  }
  const subset: Manifest = {};
  for (const p of opts.served) if (opts.remote[p]) subset[p] = opts.remote[p]!;
  const bytes = serializeManifest(subset);
  if (current?.equals(bytes) && !(await stat(signatureOf(file)).catch(() => null))) return 'unchanged';
  // no origin signature covers a part of its manifest: remove the old one first, so no reader pairs it with these bytes
  await rm(signatureOf(file), { force: true });
  await fsyncDir(opts.out);
  await writeFileAtomic(file, bytes);
  return 'subset';
}

/** The signature of exactly these manifest bytes (null: the origin signs nothing; undefined: it no longer matches). */
async function manifestSignature(opts: TierCopyOptions): Promise<Buffer | null | undefined> {
  const signature = await readSignature(opts.manifestUrl, { signal: opts.sync.signal });
  if (!signature) return null;
  return (await signatureMatches(opts.manifestBytes, signature)) ? signature : undefined;
}

/** Where a bundle URL under the published tree lives in the copy; refuses anything that would leave it. */
function outPathOf(out: string, bundlesBase: string, url: string, repo: string): string {
  const root = new URL(bundlesBase).pathname.replace(/\/*$/, '/');
  const pathname = new URL(url).pathname;
  const segments = pathname.startsWith(root) ? pathname.slice(root.length).split('/').map(decodeSegment) : null;
  if (
    !segments ||
    segments.some(
      (s) => s === null || s === '' || s.startsWith('.') || s.includes('/') || s.includes('\\') || s.includes('\0'),
    )
  ) {
    throw new BundlemirrorError('E_INDEX', `bundle ${url} has no safe place in the published copy`, {
      repo,
      hint: 'the origin published an unsafe index; report it',
    });
  }
  return join(out, ...(segments as string[]));
}

function decodeSegment(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** A hard link when the copy shares the replica's filesystem, else a copy; renamed into place either way. */
async function placeFile(from: string, dest: string): Promise<void> {
  const tmp = tempPathFor(dest);
  await mkdir(dirname(dest), { recursive: true });
  try {
    await link(from, tmp);
  } catch {
    await copyFile(from, tmp);
  }
  await rename(tmp, dest);
  await fsyncDir(dirname(dest));
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}
