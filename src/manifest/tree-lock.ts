/**
 * One writer at a time in a published tree. Publish, gc, `publish -x`, the
 * on-demand cache's eviction and a tier's copy all rewrite the manifest and
 * delete files readers may be sent to, so they all take this one lock; a
 * second name for it would let two of them interleave.
 */
import { join } from 'node:path';
import { acquireLock, type Release } from '../lock/lock.js';

export interface TreeLockOptions {
  /** Names the holder in "waiting for ..." and E_LOCKED messages. */
  what?: string;
  waitMs?: number;
  /** Told once, when another writer holds the lock and the wait begins. */
  log?: (line: string) => void;
}

export function lockPublishedTree(out: string, opts: TreeLockOptions = {}): Promise<Release> {
  const what = opts.what ?? `publish into ${out}`;
  return acquireLock({
    path: join(out, '.publish'),
    what,
    wait: opts.waitMs ?? 5 * 60_000,
    onWait: () => opts.log?.(`waiting for another ${what} to finish`),
  });
}
