/**
 * Cross-process locks (proper-lockfile): one publish per published tree,
 * one pull per toplevel. A lock left by a killed process goes stale and is
 * taken over, so a crash never blocks the next run for long.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import { BundlemirrorError } from '../errors.js';
import { removeLockOfDeadHolder, removeLockOwner, writeLockOwner } from './lock-holder.js';

export interface LockOptions {
  /** What the lock protects, for messages ("publish of /srv/bundles"). */
  what: string;
  /** How long to wait for a lock another process holds; 0 fails at once. */
  waitMs?: number;
  onWait?: () => void;
  /** Milliseconds after which an unrefreshed lock counts as abandoned. */
  staleMs?: number;
}

export type Release = () => Promise<void>;

export async function acquireLock(path: string, opts: LockOptions): Promise<Release> {
  await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + (opts.waitMs ?? 0);
  let warned = false;
  for (;;) {
    try {
      const release = await lockfile.lock(path, {
        realpath: false,
        stale: opts.staleMs ?? 30_000,
        update: Math.min(10_000, (opts.staleMs ?? 30_000) / 3),
        onCompromised: () => {
          /* refresh failed (clock jump, slow disk): the work in progress finishes under its own atomic renames */
        },
      });
      // who holds it, so that a holder killed with -9 is recognised and its lock taken over at once (src/lock/lock-holder.ts)
      await writeLockOwner(`${path}.lock`);
      return async () => {
        await removeLockOwner(`${path}.lock`);
        try {
          await release();
        } catch {
          /* already released or taken over as stale */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (await removeLockOfDeadHolder(`${path}.lock`)) continue;
      if (Date.now() >= deadline) {
        throw new BundlemirrorError('E_LOCKED', `another ${opts.what} is running (lock ${path}.lock)`, {
          hint: 'wait for it to finish, or retry later; a lock left by a process killed on this host is taken over at once, on another host after 30 s',
        });
      }
      if (!warned) {
        opts.onWait?.();
        warned = true;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
