/**
 * Open files for the static handlers, and the ones kept open between
 * requests: content-addressed bundles and LFS objects.
 *
 * Such a file's bytes never change under its name (the name is their
 * sha256), so what the first request proved about it -- its real path lies
 * inside the served root with no dot component, and it is a regular file --
 * holds for as long as the same request path still leads to the same inode.
 * A later request re-proves exactly that with an lstat started after it
 * arrived (shared by the requests that arrive in the same turn of the event
 * loop), instead of a realpath, an open, an fstat and a close: a file that
 * gc deleted, that was replaced, or that was swapped for a symlink fails the
 * check and goes back through the full checks, which decide as they would
 * for a first request. (Whatever route the kernel takes to the inode, the
 * bytes served are the ones that were proved to be published under that
 * name.)
 *
 * Bounded: at most `maxOpen` files stay open between requests (the least
 * recently used is closed first; one still being read is closed when its
 * last response is done), and a file nobody asked for during `idleMs` is
 * closed, so a bundle gc deleted does not hold its disk space for long.
 *
 * The callback API of node:fs, not the promise one: on a server answering
 * thousands of small ranges a second, FileHandle's bookkeeping (and its
 * close) cost more than the system calls themselves.
 */
import { close as closeFd, constants, fstat, lstat, open as openFd, type BigIntStats } from 'node:fs';

/** A regular file open for reading; `release` once its response no longer reads it. */
export interface OpenFile {
  fd: number;
  /** From the open file, or from the lstat that proved a kept file still current. */
  st: BigIntStats;
  release(): void;
}

export interface OpenFileLimits {
  /** Files kept open between requests (default 64). */
  maxOpen?: number;
  /** A kept file unused this long is closed (default 10 s). */
  idleMs?: number;
}

interface Kept {
  path: string;
  fd: number;
  dev: bigint;
  ino: bigint;
  size: bigint;
  /** Responses reading it now. */
  users: number;
  /** Still in the cache; once false, closed when `users` drops to 0. */
  kept: boolean;
  lastUsed: number;
  /** The lstat the requests that arrived since the last one was started will share; null: none waiting. */
  nextCheck: Promise<BigIntStats | null> | null;
}

function closeQuietly(fd: number): void {
  closeFd(fd, () => undefined);
}

function lstatBig(path: string): Promise<BigIntStats | null> {
  return new Promise((resolve) => lstat(path, { bigint: true }, (err, st) => resolve(err ? null : st)));
}

/** Opens a regular file without following a final symlink and without blocking on a FIFO; null for anything else. */
export function openRegular(path: string): Promise<{ fd: number; st: BigIntStats } | null> {
  return new Promise((resolve) => {
    openFd(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK, (err, fd) => {
      if (err) return resolve(null);
      fstat(fd, { bigint: true }, (err2, st) => {
        if (!err2 && st.isFile()) return resolve({ fd, st });
        closeQuietly(fd);
        resolve(null);
      });
    });
  });
}

/** `openRegular` for one response only: released means closed. */
export async function openOnce(path: string): Promise<OpenFile | null> {
  const opened = await openRegular(path);
  return opened === null ? null : oneShot(opened.fd, opened.st);
}

/** An open file used by one response only: released means closed. */
export function oneShot(fd: number, st: BigIntStats): OpenFile {
  let open = true;
  return {
    fd,
    st,
    release: () => {
      if (open) closeQuietly(fd);
      open = false;
    },
  };
}

export class OpenFileCache {
  /** Insertion order is recency: the first entry is the least recently used. */
  private readonly kept = new Map<string, Kept>();
  private readonly maxOpen: number;
  private readonly idleMs: number;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(limits: OpenFileLimits = {}) {
    this.maxOpen = limits.maxOpen ?? 64;
    this.idleMs = limits.idleMs ?? 10_000;
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, this.idleMs / 2));
    this.sweeper.unref();
  }

  /** Files kept open between requests now. */
  get openCount(): number {
    return this.kept.size;
  }

  /**
   * The kept file for `path` if `path` still names the same regular file
   * (not a symlink, same device, inode and size); otherwise null, and the
   * caller makes the full checks.
   */
  async reuse(path: string): Promise<OpenFile | null> {
    const k = this.kept.get(path);
    if (k === undefined) return null;
    k.users += 1; // held across the lstat: an eviction meanwhile must not close it under us
    const st = await this.check(k);
    if (st === null || !st.isFile() || st.dev !== k.dev || st.ino !== k.ino || st.size !== k.size) {
      this.forget(k);
      this.release(k);
      return null;
    }
    if (k.kept) {
      this.kept.delete(path);
      this.kept.set(path, k);
    }
    k.lastUsed = Date.now();
    return this.lease(k, st);
  }

  /** Keeps a file the caller has just proved servable under `path`, and lends it to that caller. */
  keep(path: string, fd: number, st: BigIntStats): OpenFile {
    if (this.closed) return oneShot(fd, st);
    const old = this.kept.get(path);
    if (old !== undefined) this.forget(old);
    const k: Kept = {
      path,
      fd,
      dev: st.dev,
      ino: st.ino,
      size: st.size,
      users: 1,
      kept: true,
      lastUsed: Date.now(),
      nextCheck: null,
    };
    this.kept.set(path, k);
    for (const lru of this.kept.values()) {
      if (this.kept.size <= this.maxOpen) break;
      this.forget(lru);
    }
    return this.lease(k, st);
  }

  /** Closes every kept file (those still being read once their responses are done). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const k of [...this.kept.values()]) this.forget(k);
  }

  /**
   * An lstat of the kept file's path started after the caller asked. The
   * requests that arrive in the same turn of the event loop share one:
   * it is started once they have all been read, so it proves what is on
   * disk after each of them arrived, as one lstat each would.
   */
  private check(k: Kept): Promise<BigIntStats | null> {
    k.nextCheck ??= new Promise((resolve) =>
      setImmediate(() => {
        k.nextCheck = null;
        void lstatBig(k.path).then(resolve);
      }),
    );
    return k.nextCheck;
  }

  private lease(k: Kept, st: BigIntStats): OpenFile {
    let held = true;
    return {
      fd: k.fd,
      st,
      release: () => {
        if (held) this.release(k);
        held = false;
      },
    };
  }

  private forget(k: Kept): void {
    if (!k.kept) return;
    k.kept = false;
    if (this.kept.get(k.path) === k) this.kept.delete(k.path);
    if (k.users === 0) closeQuietly(k.fd);
  }

  private release(k: Kept): void {
    k.users -= 1;
    if (!k.kept && k.users === 0) closeQuietly(k.fd);
  }

  private sweep(): void {
    const before = Date.now() - this.idleMs;
    for (const k of [...this.kept.values()]) if (k.users === 0 && k.lastUsed <= before) this.forget(k);
  }
}
