/**
 * Where a repository's index.json comes from and whether to believe it: the
 * origin's tree (or a mirror of it), checked against [remote] allowed_signers
 * and the signed manifest, or an on-demand service for a repository the
 * origin has no bundles for. null means: no index, use git fetch.
 */
import { BundlemirrorError } from '../../errors.js';
import { verifyFetched } from '../trusted-documents.js';
import type { ManifestEntry } from '../../manifest/manifest.js';
import { parseRepoIndex, type RepoIndex } from '../../manifest/repo-index.js';
import { indexUrl } from '../../manifest/tree.js';
import { fetchDocument, fetchDocumentFromHosts } from '../../transfer/document.js';
import { askService, describeJob } from '../../on-demand/client.js';
import { transferPolicy, treeRedirects, type SyncContext } from './sync-context.js';

const MAX_INDEX_BYTES = 64 << 20;

/** Where an index and its bundles come from: the origin's tree, or an on-demand service's. */
export interface BundleSource {
  index: RepoIndex;
  indexUrl: string;
  /** Bundle URLs must stay under this. */
  root: string;
}

export async function fetchIndex(path: string, entry: ManifestEntry, ctx: SyncContext): Promise<RepoIndex | null> {
  const url = indexUrl(ctx.bundlesBase!, path);
  let signed: { index: RepoIndex; body: Buffer; signature: Buffer } | null = null;
  try {
    const doc = await fetchDocumentFromHosts(url, ctx.mirrors, {
      maxBytes: MAX_INDEX_BYTES,
      signal: ctx.signal,
      redirects: treeRedirects(ctx, path),
      repo: path,
      onWrongHost: (root, err) =>
        ctx.log.warn(`${path}: ${root} served index.json wrong, skipped: ${(err as Error).message}`),
      ...transferPolicy(path, ctx),
      // the check runs per host, so with [remote] mirrors a host serving a forged or stale index is skipped for the next one
      verify: ctx.allowedSigners
        ? async (body, from) => {
            const checked = await verifyFetched(from, body, {
              allowedSigners: ctx.allowedSigners!,
              what: 'index.json',
              maxBytes: MAX_INDEX_BYTES,
              repo: path,
              signal: ctx.signal,
              redirects: from === url ? treeRedirects(ctx, path) : { roots: [new URL('.', from).href], repo: path },
            });
            const parsed = parseRepoIndex(checked.body, path);
            checkIndexAge(parsed, entry, ctx.manifestPublished ?? null, path);
            signed = { index: parsed, body: checked.body, signature: checked.signature };
          }
        : undefined,
    });
    if (doc.status !== 'ok') return null;
    // set by the check above (TypeScript cannot see the assignment inside the callback)
    const checked = signed as { index: RepoIndex; body: Buffer; signature: Buffer } | null;
    if (checked) {
      ctx.onIndex?.(path, checked.body, checked.signature);
      return checked.index;
    }
    const index = parseRepoIndex(doc.body, path);
    ctx.onIndex?.(path, doc.body, undefined);
    return index;
  } catch (err) {
    if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND' && ctx.allowedSigners) {
      // without its signed index, nothing says which refs are the origin's
      throw new BundlemirrorError(
        'E_SIGNATURE_MISSING',
        `no index.json at ${url}, and [remote] allowed_signers requires a signed one`,
        {
          repo: path,
          hint: 'the host serves an incomplete tree; the previous state is kept',
          cause: err,
        },
      );
    }
    if (err instanceof BundlemirrorError && (err.code.startsWith('E_SIGNATURE_') || err.code === 'E_ROLLBACK'))
      throw err;
    if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND') {
      ctx.log.debug(`${path}: no index.json at ${url}; using git fetch`);
      return null;
    }
    // a hostile answer is reported, not papered over with git fetch
    if (err instanceof BundlemirrorError && ['E_INDEX', 'E_REDIRECT', 'E_SYMLINK'].includes(err.code)) throw err;
    if (ctx.signal?.aborted) throw err; // interrupted, not unreadable: no fallback, no misleading warning
    if (ctx.site) {
      ctx.log.warn(`${path}: cannot read ${url} (${(err as Error).message}); using git fetch`);
      return null;
    }
    throw err;
  }
}

/**
 * A validly signed index older than the signed manifest must describe the
 * same refs: a publish writes the index before the manifest, so an older
 * index with other refs is one replayed from an earlier publish. (A newer
 * index is a publish that happened meanwhile.)
 */
export function checkIndexAge(
  index: RepoIndex,
  entry: ManifestEntry,
  manifestPublished: string | null,
  path: string,
): void {
  if (!manifestPublished || !entry.fingerprint || index.fingerprint === entry.fingerprint) return;
  if (Date.parse(index.generated) < Date.parse(manifestPublished)) {
    throw new BundlemirrorError(
      'E_ROLLBACK',
      `index.json (generated ${index.generated}, fingerprint ${index.fingerprint.slice(0, 12)}) is older than the signed manifest (published ${manifestPublished}), which says ${entry.fingerprint.slice(0, 12)}: an older index replayed`,
      {
        repo: path,
        hint: 'a host between the origin and this replica serves an old copy of this repository; its previous state is kept',
      },
    );
  }
}

/** Asks the on-demand service for `site + path`; null (and git fetch) when it cannot help. */
export async function onDemandSource(path: string, ctx: SyncContext): Promise<BundleSource | null> {
  const upstream = ctx.site!.replace(/\/+$/, '') + path;
  try {
    const mirror = await askService(ctx.onDemand!, upstream, {
      signal: ctx.signal,
      onUpdate: (job) => ctx.log.debug(`${path}: ${describeJob(job)}`),
    });
    const root = new URL('.', mirror.indexUrl).href;
    const doc = await fetchDocument(mirror.indexUrl, {
      maxBytes: MAX_INDEX_BYTES,
      signal: ctx.signal,
      redirects: { roots: [root], repo: path },
    });
    if (doc.status !== 'ok') return null;
    ctx.log.debug(`${path}: bundles from the on-demand service at ${mirror.indexUrl}`);
    return { index: parseRepoIndex(doc.body, mirror.path), indexUrl: mirror.indexUrl, root };
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    ctx.log.warn(
      `${path}: the on-demand service ${ctx.onDemand} could not help (${(err as Error).message}); using git fetch`,
    );
    return null;
  }
}
