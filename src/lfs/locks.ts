/**
 * LFS file locks of one repository, kept in `<repo>/lfs/locks.json`.
 *
 * Every change is read-modify-write under the repository's lock file (so
 * two `serve` processes on one toplevel cannot both lock a path) and a
 * per-file queue in this process (so concurrent requests do not poll the
 * lock), and lands by atomic rename: a crash leaves the old list or the
 * new one, and locks survive restarts.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { acquireLock } from '../lock/lock.js';

export interface LfsLock {
  id: string;
  path: string;
  owner: string;
  lockedAt: string;
}

interface LockFile {
  version: 1;
  locks: LfsLock[];
}

/** A repository with more locks than this refuses new ones (the file is read on every request). */
const MAX_LOCKS = 100_000;
const MAX_PATH = 4096;

function locksFileOf(repoDir: string): string {
  return join(repoDir, 'lfs', 'locks.json');
}

/**
 * Why a lock path is refused, or null. Paths are relative to the work
 * tree's root, `/`-separated, with no empty, `.` or `..` component and no
 * control characters: a lock names a file inside the repository, nothing else.
 */
export function lockPathProblem(path: unknown): string | null {
  if (typeof path !== 'string' || path === '') return 'must be a non-empty string';
  if (path.length > MAX_PATH) return `is longer than ${MAX_PATH} characters`;
  if (/[\x00-\x1f\x7f\\]/.test(path)) return 'contains a control character or a backslash';
  if (path.startsWith('/')) return 'must be relative to the repository root';
  if (path.split('/').some((c) => c === '' || c === '.' || c === '..')) return 'has an empty, "." or ".." component';
  return null;
}

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` alone for this file: after this process's earlier calls, under the cross-process lock. */
async function exclusive<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const before = queues.get(file) ?? Promise.resolve();
  const mine = before
    .catch(() => undefined)
    .then(async () => {
      const release = await acquireLock({
        path: file,
        what: `LFS lock update of ${file}`,
        wait: 10_000,
        staleMs: 10_000,
      });
      try {
        return await fn();
      } finally {
        await release();
      }
    });
  const tail = mine.catch(() => undefined);
  queues.set(file, tail);
  try {
    return await mine;
  } finally {
    if (queues.get(file) === tail) queues.delete(file);
  }
}

async function readLocks(file: string): Promise<LfsLock[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const data = JSON.parse(text) as Partial<LockFile>;
  if (data.version !== 1 || !Array.isArray(data.locks)) {
    throw new BundlemirrorError('E_CONFIG', `${file} is not a locks file this bundlemirror reads`, {
      hint: 'restore it from a backup or remove it (every lock is lost)',
    });
  }
  return data.locks;
}

async function writeLocks(file: string, locks: LfsLock[]): Promise<void> {
  const data: LockFile = { version: 1, locks };
  await writeFileAtomic(file, JSON.stringify(data, null, 1) + '\n');
}

export type CreateOutcome =
  { created: true; lock: LfsLock } | { created: false; existing: LfsLock } | { created: false; full: true };
export type UnlockOutcome =
  { ok: true; lock: LfsLock } | { ok: false; reason: 'not-found' | 'not-owner'; lock?: LfsLock };

export class LfsLockStore {
  readonly file: string;
  constructor(readonly repoDir: string) {
    this.file = locksFileOf(repoDir);
  }

  /** All locks, oldest first. Reading needs no lock: the file is only ever replaced whole. */
  async list(): Promise<LfsLock[]> {
    return sortLocks(await readLocks(this.file));
  }

  async create(path: string, owner: string, now = new Date()): Promise<CreateOutcome> {
    return exclusive(this.file, async () => {
      const locks = await readLocks(this.file);
      const existing = locks.find((l) => l.path === path);
      if (existing) return { created: false, existing };
      if (locks.length >= MAX_LOCKS) return { created: false, full: true };
      const lock: LfsLock = {
        id: randomBytes(16).toString('hex'),
        path,
        owner,
        lockedAt: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      };
      await writeLocks(this.file, [...locks, lock]);
      return { created: true, lock };
    });
  }

  async unlock(id: string, user: string, force: boolean): Promise<UnlockOutcome> {
    return exclusive(this.file, async () => {
      const locks = await readLocks(this.file);
      const lock = locks.find((l) => l.id === id);
      if (!lock) return { ok: false, reason: 'not-found' };
      if (lock.owner !== user && !force) return { ok: false, reason: 'not-owner', lock };
      await writeLocks(
        this.file,
        locks.filter((l) => l.id !== id),
      );
      return { ok: true, lock };
    });
  }
}

function sortLocks(locks: LfsLock[]): LfsLock[] {
  return [...locks].sort((a, b) => (a.lockedAt < b.lockedAt ? -1 : a.lockedAt > b.lockedAt ? 1 : a.id < b.id ? -1 : 1));
}
