/**
 * The LFS objects of one replica repository: each object the index lists
 * and the repository's `lfs/objects/` lacks is downloaded with the same
 * resumable, verified downloader as bundles (the oid is the sha256, the
 * index gives the size), straight into the place git-lfs and `serve` read
 * it from. An object appears there only once whole and verified.
 */
import type { RetryWait } from '../../transfer/retry-policy.js';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { BundlemirrorError } from '../../errors.js';
import { lfsObjectPath, lfsObjectRelPath } from '../../lfs/oid.js';
import { lfsObjectSize } from '../../lfs/store.js';
import type { RepoIndex } from '../../manifest/repo-index.js';
import { downloadFile, type DownloadProgress } from '../../transfer/download.js';
import type { RedirectRule } from '../../transfer/http.js';
import { STATE_DIR } from '../paths.js';

/** Objects downloaded side by side: enough to hide per-request latency, few enough for a thin link. */
const PARALLEL = 4;

/** Partials of LFS objects, apart from bundle partials (pull clears those it no longer needs). */
export function lfsPartialDir(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'lfs-partial');
}

export interface LfsSyncOptions {
  toplevel: string;
  /** The replica repository. */
  dir: string;
  path: string;
  index: RepoIndex;
  /** URL of the repository's index.json: objects are published beside it. */
  indexUrl: string;
  /** Where redirects may lead (as for bundles). */
  redirects?: RedirectRule | undefined;
  retries?: number | undefined;
  retryForMs?: number | undefined;
  onWait?: ((w: RetryWait) => void) | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((file: string, p: DownloadProgress) => void) | undefined;
}

export interface LfsSyncResult {
  /** Objects the index lists. */
  listed: number;
  downloaded: number;
  bytesDownloaded: number;
  bytesResumed: number;
}

export async function syncLfsObjects(opts: LfsSyncOptions): Promise<LfsSyncResult> {
  const objects = opts.index.lfs?.objects ?? [];
  const result: LfsSyncResult = { listed: objects.length, downloaded: 0, bytesDownloaded: 0, bytesResumed: 0 };
  const limit = pLimit(PARALLEL);
  const failures: unknown[] = [];
  await Promise.all(
    objects.map((o) =>
      limit(async () => {
        if (failures.length > 0 || (await lfsObjectSize(opts.dir, o.oid)) === o.size) return;
        const rel = lfsObjectRelPath(o.oid);
        try {
          const got = await downloadFile({
            // the oid was checked by the index schema: this URL stays beside the index
            url: new URL(rel, opts.indexUrl).toString(),
            redirects: opts.redirects,
            dest: lfsObjectPath(opts.dir, o.oid),
            expectedSize: o.size,
            sha256: o.oid,
            partialDir: lfsPartialDir(opts.toplevel),
            retries: opts.retries,
            retryForMs: opts.retryForMs,
            onWait: opts.onWait,
            signal: opts.signal,
            onProgress: opts.onProgress ? (p) => opts.onProgress!(rel, p) : undefined,
          });
          result.downloaded += 1;
          result.bytesDownloaded += got.bytesDownloaded;
          result.bytesResumed += got.bytesResumed;
        } catch (err) {
          failures.push(err);
        }
      }),
    ),
  );
  if (failures.length > 0) {
    const first = failures[0];
    if (opts.signal?.aborted) throw first;
    const e =
      first instanceof BundlemirrorError
        ? first
        : new BundlemirrorError('E_DOWNLOAD', (first as Error).message, { cause: first });
    throw new BundlemirrorError(e.code, `LFS object download failed: ${e.message}`, {
      repo: opts.path,
      hint: e.hint ?? 'run pull again; finished objects are kept',
      cause: e,
    });
  }
  return result;
}
