/**
 * The LFS object store of one bare repository: `lfs/objects/ab/cd/<oid>`,
 * the layout git-lfs uses, so an existing LFS-enabled repository works as
 * it is. An object becomes visible only by renaming a complete temp file
 * whose size and sha256 were checked while it was written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, type Dirent } from 'node:fs';
import { copyFile, link, lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir } from '../fs/atomic.js';
import { processAlive } from '../lock/lock-holder.js';
import { isLfsOid, lfsObjectPath, lfsObjectsDir, lfsTempDir } from './oid.js';

/** Size of a stored object, or null when it is absent (or not a regular file). */
export async function lfsObjectSize(repoDir: string, oid: string): Promise<number | null> {
  try {
    const st = await lstat(lfsObjectPath(repoDir, oid));
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

export type StoreOutcome =
  | { ok: true; size: number }
  | { ok: false; reason: 'hash-mismatch'; sha256: string; size: number }
  | { ok: false; reason: 'size-mismatch'; size: number }
  | { ok: false; reason: 'too-large'; size: number }
  | { ok: false; reason: 'aborted' };

/**
 * Streams `body` into a temp file, hashing as it writes, and renames it to
 * the object's place only when exactly `expectedSize` bytes arrived and
 * they hash to `oid`. Anything else (a short body, a client that hung up,
 * other bytes) removes the temp file: nothing partial is ever visible.
 */
export async function storeLfsObject(
  repoDir: string,
  oid: string,
  expectedSize: number,
  body: Readable,
): Promise<StoreOutcome> {
  if (!isLfsOid(oid)) throw new TypeError('storeLfsObject: bad oid');
  const tmpDir = lfsTempDir(repoDir);
  await mkdir(tmpDir, { recursive: true });
  await removeDeadTemps(tmpDir);
  const tmp = join(tmpDir, `${oid}.${process.pid}.${randomBytes(4).toString('hex')}.part`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  const hash = createHash('sha256');
  let size = 0;
  let committed = false;
  try {
    let aborted = false;
    body.once('aborted', () => (aborted = true));
    try {
      for await (const chunk of body) {
        const buf = chunk as Buffer;
        size += buf.length;
        // never write past what was announced: a lying client cannot fill the disk
        if (size > expectedSize) return { ok: false, reason: 'too-large', size };
        hash.update(buf);
        await fh.write(buf);
      }
    } catch (err) {
      // our own write failing (a full disk) is for the caller to report; anything else is the client going away
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO') throw err;
      return { ok: false, reason: 'aborted' };
    }
    if (aborted) return { ok: false, reason: 'aborted' };
    if (size !== expectedSize) return { ok: false, reason: 'size-mismatch', size };
    const sha256 = hash.digest('hex');
    if (sha256 !== oid) return { ok: false, reason: 'hash-mismatch', sha256, size };
    await fh.sync();
    await fh.close();
    const dest = lfsObjectPath(repoDir, oid);
    await mkdir(dirname(dest), { recursive: true });
    await rename(tmp, dest);
    committed = true;
    await fsyncDir(dirname(dest));
    return { ok: true, size };
  } finally {
    await fh.close().catch(() => undefined);
    if (!committed) await rm(tmp, { force: true });
  }
}

const TEMP_NAME = /^[0-9a-f]{64}\.(\d+)\.[0-9a-f]{8}\.part$/;

/** Temp files of uploads whose server was killed (their pid is gone): nobody will finish them. */
async function removeDeadTemps(tmpDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(tmpDir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (m && Number(m[1]) !== process.pid && !(await processAlive(Number(m[1]))))
      await rm(join(tmpDir, name), { force: true });
  }
}

/** The sha256 of a file, read in 1 MiB pieces. */
async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface StoredObject {
  oid: string;
  size: number;
  path: string;
}

/**
 * Every object file in a repository's store whose name and place follow the
 * layout; anything else (temp files, stray names) is not an object.
 */
export async function listLfsObjects(repoDir: string): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  const top = lfsObjectsDir(repoDir);
  const dirs = async (d: string): Promise<Dirent[]> => {
    try {
      return await readdir(d, { withFileTypes: true });
    } catch {
      return [];
    }
  };
  for (const a of await dirs(top)) {
    if (!a.isDirectory() || !/^[0-9a-f]{2}$/.test(a.name)) continue;
    for (const b of await dirs(join(top, a.name))) {
      if (!b.isDirectory() || !/^[0-9a-f]{2}$/.test(b.name)) continue;
      for (const f of await dirs(join(top, a.name, b.name))) {
        if (!f.isFile() || !isLfsOid(f.name) || !f.name.startsWith(a.name + b.name)) continue;
        const path = join(top, a.name, b.name, f.name);
        try {
          out.push({ oid: f.name, size: (await stat(path)).size, path });
        } catch {
          /* removed meanwhile */
        }
      }
    }
  }
  return out.sort((x, y) => (x.oid < y.oid ? -1 : 1));
}

/**
 * Puts `src` at `dest` without a second copy when the filesystem allows (a
 * hard link), else by copying to a temp name and renaming. An existing
 * `dest` is left alone: content-addressed files never change.
 */
export async function linkOrCopy(src: string, dest: string): Promise<'linked' | 'copied' | 'present'> {
  try {
    await lstat(dest);
    return 'present';
  } catch {
    /* not there yet */
  }
  await mkdir(dirname(dest), { recursive: true });
  try {
    await link(src, dest);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return 'present';
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
  }
  const tmp = `${dest}.${process.pid}.${randomBytes(4).toString('hex')}.part`;
  try {
    await copyFile(src, tmp);
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
  return 'copied';
}

/** Objects of a repository's store whose bytes do not hash to their name. */
export async function corruptLfsObjects(repoDir: string): Promise<{ oid: string; sha256: string; path: string }[]> {
  const bad: { oid: string; sha256: string; path: string }[] = [];
  for (const o of await listLfsObjects(repoDir)) {
    let sha256: string;
    try {
      sha256 = await sha256OfFile(o.path);
    } catch (err) {
      sha256 = `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
    if (sha256 !== o.oid) bad.push({ oid: o.oid, sha256, path: o.path });
  }
  return bad;
}
