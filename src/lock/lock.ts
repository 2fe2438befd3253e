/**
 * Cross-process locks, the one way bundlemirror takes them: one publish or
 * gc per published tree, one pull (and one daemon) per toplevel, one writer
 * of a replica's state.json, one writer of an LFS locks database.
 *
 * A lock is proper-lockfile's directory `<path>.lock`, whose mtime the
 * holder refreshes; who holds it (pid, host, start time) is written next to
 * it in `<path>.lock.owner` (proper-lockfile removes its directory with
 * rmdir, so nothing may live inside). A lock is stale, and taken over:
 *
 * - at once (after at most lock-holder.ts's QUIET_MS) when its owner file
 *   names a process of this host that no longer exists: a holder killed
 *   with -9, the OOM killer, a power loss;
 * - after 5 s without a refresh, 3 s of them watched, when its owner file
 *   names nobody (missing, or cut short): a holder killed between taking
 *   the lock and writing that file (a live holder refreshes it every 2 s);
 * - after `staleMs` without a refresh otherwise (a holder on another host
 *   sharing the directory).
 *
 * A lock that stays held past `wait` fails with E_LOCKED (exit 2), naming
 * the holder when it is known and saying when the lock would be taken over.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import lockfile from 'proper-lockfile';
import { BundlemirrorError, isDiskFullErrno, isPermissionErrno, permissionError } from '../errors.js';
import {
  readLockOwner,
  removeLockOfDeadHolder,
  removeLockOwner,
  writeLockOwner,
  type LockOwner,
} from './lock-holder.js';

export const DEFAULT_STALE_MS = 30_000;

export interface LockRequest {
  /** What is locked; the lock itself is the directory `<path>.lock` (its parent is created). */
  path: string;
  /** What the lock protects, for messages: `publish into /srv/bundles`. */
  what: string;
  /** Milliseconds to wait for another holder; 0 (the default) fails at once. */
  wait?: number;
  /** Called once when the lock is held by someone else and we start waiting. */
  onWait?: (holder: string) => void;
  /** Stops the wait (Ctrl-C): rejects with the signal's reason. */
  signal?: AbortSignal;
  /** An unrefreshed lock older than this is taken over (default 30 s, at least 2 s). */
  staleMs?: number;
  /**
   * The lock could not be refreshed in time (event loop blocked longer than
   * staleMs, clock jump, someone removed it): another process may take it.
   * Work in progress still finishes under its own atomic renames. Default:
   * a process warning.
   */
  onCompromised?: (err: Error) => void;
}

/** Releases the lock; calling it again does nothing. */
export type Release = () => Promise<void>;

export async function acquireLock(req: LockRequest): Promise<Release> {
  const lockDir = `${req.path}.lock`;
  const stale = Math.max(2000, req.staleMs ?? DEFAULT_STALE_MS);
  const wait = req.wait ?? 0;
  await mkdir(dirname(req.path), { recursive: true });
  const deadline = Date.now() + wait;
  let pause = 20;
  let warned = false;
  for (;;) {
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(req.path, {
        realpath: false,
        stale,
        // a live holder touches its lock every 2 s at most, so a lock untouched for NO_OWNER_QUIET_MS
        // with nobody named in its owner file has lost its holder (lock-holder.ts)
        update: Math.max(1000, Math.min(2000, Math.floor(stale / 2))),
        retries: 0,
        onCompromised:
          req.onCompromised ?? ((err: Error) => process.emitWarning(`lock ${lockDir} compromised: ${err.message}`)),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (await removeLockOfDeadHolder(lockDir)) continue;
      const holder = describeHolder(await readLockOwner(lockDir));
      if (Date.now() >= deadline) {
        throw new BundlemirrorError(
          'E_LOCKED',
          `another ${req.what} is running (${holder}${wait > 0 ? `; waited ${Math.round(wait / 1000)} s` : ''})`,
          {
            hint: `wait for it to finish; if that process is gone, its lock (${lockDir}) is taken over automatically: at once when it ran on this host, ${Math.round(stale / 1000)} s after it stopped otherwise`,
            cause: err,
          },
        );
      }
      req.signal?.throwIfAborted();
      if (!warned) req.onWait?.(holder);
      warned = true;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(200, Math.round(pause * 1.5));
      continue;
    }
    // who holds it, so that a holder killed with -9 is recognised and its lock taken over at once; a
    // lock whose holder cannot say so is given back (another process would take it over as abandoned)
    try {
      await writeLockOwner(lockDir);
    } catch (err) {
      await release().catch(() => {});
      if (isPermissionErrno(err)) throw permissionError(err);
      throw new BundlemirrorError(
        'E_DISK',
        `cannot write ${lockDir}.owner, who holds the lock of ${req.what}: ${(err as Error).message}`,
        {
          hint: isDiskFullErrno(err)
            ? 'free some space on that file system, then run it again'
            : `see what is wrong with the file system holding ${lockDir} (${(err as NodeJS.ErrnoException).code ?? 'no errno'}), then run it again`,
          cause: err,
        },
      );
    }
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      await removeLockOwner(lockDir);
      try {
        await release();
      } catch {
        /* already released, or taken over after being compromised */
      }
    };
  }
}

export interface LockStatus {
  /** A live (recently refreshed) lock exists. */
  held: boolean;
  /** Its holder, when it wrote itself down. */
  owner: LockOwner | null;
}

/** Whether `path` is locked now, and by whom (for `status`); takes nothing. */
export async function check(path: string, opts: { staleMs?: number } = {}): Promise<LockStatus> {
  const held = await lockfile
    .check(path, { realpath: false, stale: Math.max(2000, opts.staleMs ?? DEFAULT_STALE_MS) })
    .catch(() => false);
  return { held, owner: held ? await readLockOwner(`${path}.lock`) : null };
}

function describeHolder(owner: LockOwner | null): string {
  if (!owner) return 'holder unknown';
  return `pid ${owner.pid}${owner.hostname !== hostname() ? ` on ${owner.hostname}` : ''}, started ${owner.startedAt}`;
}
