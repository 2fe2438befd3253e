/**
 * One `bundlemirror pull` per toplevel at a time. Two pulls on one tree
 * would race on the same bare repositories, temp files and state.
 *
 * The lock is proper-lockfile's directory `<toplevel>/.bundlemirror/pull.lock`,
 * whose mtime the holder refreshes; a holder killed with -9 stops refreshing
 * and the lock counts as abandoned after `staleMs`, so a crash never blocks
 * the next run for long. Who holds it (pid, host, start time) is written
 * next to it in `pull.lock.owner` for the error message: proper-lockfile
 * removes its directory with rmdir, so nothing may live inside it.
 */
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { BundlemirrorError } from '../errors.js';
import { STATE_DIR } from '../replica/paths.js';
import { readLockOwner, removeLockOfDeadHolder, removeLockOwner, writeLockOwner, type LockOwner } from './lock-holder.js';
export const DEFAULT_LOCK_STALE_MS = 30_000;

export interface ToplevelLockOptions {
  /** An unrefreshed lock older than this is taken over (minimum 2000). */
  staleMs?: number;
  /**
   * Called when the lock could not be refreshed in time (event loop blocked
   * for longer than staleMs, clock jump, someone removed it). Another pull
   * may then start; work in progress still finishes under its own atomic
   * renames. Default: a process warning.
   */
  onCompromised?: (err: Error) => void;
}

export type { LockOwner };

export type ReleaseLock = () => Promise<void>;

export function pullLockPath(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'pull.lock');
}

/**
 * Takes the pull lock for `toplevel` or fails at once with E_LOCKED naming
 * the process that holds it. The returned function releases it (idempotent).
 */
export async function acquireToplevelLock(toplevel: string, opts: ToplevelLockOptions = {}): Promise<ReleaseLock> {
  const dir = join(toplevel, STATE_DIR);
  try {
    await mkdir(dir); // not recursive: a missing toplevel is a mistake to report, not to create
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') {
      throw new BundlemirrorError('E_TOPLEVEL', `cannot use toplevel ${toplevel}: ${code === 'ENOENT' ? 'it does not exist' : (err as Error).message}`, {
        hint: 'create it, or fix [core] toplevel',
        cause: err,
      });
    }
  }
  const lockPath = pullLockPath(toplevel);
  const stale = Math.max(2000, opts.staleMs ?? DEFAULT_LOCK_STALE_MS);
  let release: () => Promise<void>;
  const take = () =>
    // proper-lockfile keys its in-process bookkeeping by this path and mkdirs `${path}.lock`
    lockfile.lock(join(dir, 'pull'), {
      realpath: false,
      stale,
      update: Math.max(1000, Math.floor(stale / 3)),
      retries: 0,
      onCompromised:
        opts.onCompromised ??
        ((err: Error) => {
          process.emitWarning(`pull lock ${lockPath} compromised: ${err.message}`);
        }),
    });
  try {
    try {
      release = await take();
    } catch (err) {
      // a pull killed with -9 on this host: take its lock over now, not `stale` ms later (src/lock/lock-holder.ts)
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED' || !(await removeLockOfDeadHolder(lockPath))) throw err;
      release = await take();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
    const owner = await readLockOwner(lockPath);
    const who = owner ? `pid ${owner.pid}${owner.hostname !== hostname() ? ` on ${owner.hostname}` : ''}, started ${owner.startedAt}` : 'pid unknown';
    throw new BundlemirrorError('E_LOCKED', `another bundlemirror pull is running on ${toplevel} (${who})`, {
      hint: `wait for it to finish; if that process is gone, the lock (${lockPath}) is taken over automatically: at once when it ran on this host, ${Math.round(stale / 1000)} s after it stopped otherwise`,
      cause: err,
    });
  }
  await writeLockOwner(lockPath);
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await removeLockOwner(lockPath);
    try {
      await release();
    } catch {
      /* already released, or taken over after being compromised */
    }
  };
}

/** Who holds the pull lock, if anyone wrote it down (for `status`). */
export async function readPullLockOwner(toplevel: string): Promise<LockOwner | null> {
  return readLockOwner(pullLockPath(toplevel));
}
