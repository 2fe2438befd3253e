/**
 * Who holds a lock, and taking over a lock whose holder is dead.
 *
 * proper-lockfile alone recognises an abandoned lock by its age: a process
 * killed with -9 (OOM killer, power loss, an impatient admin) blocks every
 * later `pull` for `stale` (30 s) and makes every `publish` wait as long,
 * which turns "run it again" after a crash into "wait, then run it again".
 * The holder therefore writes its pid next to the lock (`<lock>.owner`;
 * proper-lockfile removes its directory with rmdir, so nothing may live
 * inside), and a process that finds the lock held by a pid that no longer
 * exists on this host removes it at once.
 *
 * The owner file can be older than the lock it sits next to: a new holder
 * creates the lock, then writes its owner file a moment later, and in
 * between the file still names the previous (dead) holder. So the lock is
 * only removed once it has gone QUIET_MS without a refresh; a live holder
 * writes its owner file within milliseconds of taking the lock. A holder
 * killed in those milliseconds leaves a lock whose owner file names nobody
 * (none, or one cut short): that lock is removed once it has gone
 * NO_OWNER_QUIET_MS untouched, which a live holder's never does (it
 * refreshes every 2 s, and gives the lock back when it cannot write its
 * owner file).
 */
import { readFile, rmdir, stat, writeFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';

export interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** A lock untouched this long, whose owner is dead, is removed (proper-lockfile's own minimum staleness). */
export const QUIET_MS = 2000;

/** A lock untouched this long whose owner file names nobody lost its holder before it wrote one. */
const NO_OWNER_QUIET_MS = 5000;
/** How long such a lock is watched for a refresh (a live holder's come every 2 s) before it is removed. */
const WATCH_MS = 3000;

export function ownerFileOf(lockDir: string): string {
  return `${lockDir}.owner`;
}

/** Writes who holds the lock; the caller gives the lock back when this throws (see NO_OWNER_QUIET_MS). */
export async function writeLockOwner(lockDir: string): Promise<void> {
  const owner: LockOwner = { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() };
  await writeFile(ownerFileOf(lockDir), JSON.stringify(owner) + '\n');
}

export async function removeLockOwner(lockDir: string): Promise<void> {
  await rm(ownerFileOf(lockDir), { force: true }).catch(() => {});
}

export async function readLockOwner(lockDir: string): Promise<LockOwner | null> {
  try {
    const data = JSON.parse(await readFile(ownerFileOf(lockDir), 'utf8')) as Partial<LockOwner>;
    if (typeof data.pid === 'number' && typeof data.hostname === 'string' && typeof data.startedAt === 'string') {
      return { pid: data.pid, hostname: data.hostname, startedAt: data.startedAt };
    }
  } catch {
    /* missing or being rewritten */
  }
  return null;
}

/** False only when we know the process is gone (no such pid, or a zombie waiting to be reaped). */
export async function processAlive(pid: number): Promise<boolean> {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    // "pid (comm) S ...": the state follows the last ')'
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Removes `lockDir` if its owner file names a process of this host that no
 * longer exists, once the lock has gone QUIET_MS without a refresh, or if
 * its owner file names nobody, once it has gone NO_OWNER_QUIET_MS (WATCH_MS
 * of them watched). Returns true when it removed the lock; false when the
 * holder is alive, unknown, on another host, or the lock changed hands.
 */
export async function removeLockOfDeadHolder(lockDir: string): Promise<boolean> {
  const owner = await readLockOwner(lockDir);
  if (!owner) {
    // its holder was killed between taking the lock and writing the file (a live one refreshes every 2 s)
    return removeOnceQuiet(lockDir, NO_OWNER_QUIET_MS, WATCH_MS, async () => !(await readLockOwner(lockDir)));
  }
  if (owner.hostname !== hostname() || (await processAlive(owner.pid))) return false;
  // the owner file must still name the dead process: a new holder may have taken the lock meanwhile
  const stillDead = async () => {
    const again = await readLockOwner(lockDir);
    return again !== null && again.pid === owner.pid && again.startedAt === owner.startedAt;
  };
  if (!(await removeOnceQuiet(lockDir, QUIET_MS, 0, stillDead))) return false;
  await removeLockOwner(lockDir);
  return true;
}

/**
 * Removes `lockDir` once it has gone `quietMs` without a refresh by its
 * mtime, and `watchMs` on our own clock (so that a holder on another host
 * whose clock is behind does not look quiet), while `abandoned()` holds.
 * False as soon as the lock is refreshed or made again (someone holds it)
 * or `abandoned()` no longer holds; true once it is gone.
 */
async function removeOnceQuiet(
  lockDir: string,
  quietMs: number,
  watchMs: number,
  abandoned: () => Promise<boolean>,
): Promise<boolean> {
  const watchedFrom = Date.now();
  for (let seen: number | null = null; ;) {
    if (!(await abandoned())) return false;
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(lockDir)).mtimeMs;
    } catch {
      return true; // gone already: whoever removed it, the way is free
    }
    if (seen !== null && mtimeMs !== seen) return false;
    seen = mtimeMs;
    const wait = Math.max(quietMs - (Date.now() - mtimeMs), watchMs - (Date.now() - watchedFrom));
    if (wait > 0) {
      await new Promise((r) => setTimeout(r, Math.min(200, wait + 10)));
      continue;
    }
    try {
      await rmdir(lockDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    }
    return true;
  }
}
