/**
 * Where publish and gc write: a directory, or `s3://BUCKET/PREFIX`, for
 * which the tree is kept in a local state directory and mirrored into the
 * bucket under the publish lock. The store's code (and the AWS SDK) loads
 * only for an s3:// target.
 */
import { resolve } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { formatBytes } from '../format/bytes.js';

export interface StoreFlags {
  state?: string;
  s3PathStyle?: boolean;
  s3PartSize?: string;
}

export interface PublishTarget {
  /** The local tree publish and gc work on. */
  out: string;
  /** Copies the tree into the store; absent for a directory target. */
  mirror?: () => Promise<void>;
  /** What the last mirror() did, for the summary line. */
  summary(): string;
}

export async function publishTarget(
  where: string,
  flags: StoreFlags,
  log?: (line: string) => void,
): Promise<PublishTarget> {
  const { isStoreUrl, parseStoreUrl, stateDirFor } = await import('../store/s3-target.js');
  if (!isStoreUrl(where)) {
    if (flags.state) throw new BundlemirrorError('E_USAGE', '--state is for s3:// targets only');
    return { out: resolve(where), summary: () => '' };
  }
  const target = parseStoreUrl(where);
  const partSize = Number(flags.s3PartSize ?? 64 << 20);
  if (!Number.isInteger(partSize) || partSize < 1)
    throw new BundlemirrorError(
      'E_USAGE',
      `--s3-part-size takes a number of bytes, not ${JSON.stringify(flags.s3PartSize)}`,
    );
  const out = stateDirFor(target, flags.state);
  let summary = '';
  const mirror = async () => {
    const { S3Store } = await import('../store/s3-store.js');
    const { mirrorTree } = await import('../store/mirror.js');
    const store = new S3Store(target, { pathStyle: !!flags.s3PathStyle });
    try {
      const r = await mirrorTree(out, store, { partSize, log });
      summary = `; ${target.url}: ${r.uploaded} uploaded (${formatBytes(r.uploadedBytes)}), ${r.deleted} deleted`;
    } finally {
      store.close();
    }
  };
  return { out, mirror, summary: () => summary };
}
