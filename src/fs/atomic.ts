/**
 * Atomic file replacement: readers see the old file or the new one, never a
 * torn write, and a crash leaves at worst a stray temp file (named so that
 * a later run can recognise and remove it).
 */
import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, open, rename, rm, readdir, stat } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { processAlive } from '../lock/lock-holder.js';

export const TEMP_MARK = '.bm-tmp-';

export function tempPathFor(file: string): string {
  return join(dirname(file), `${TEMP_MARK}${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    /* some filesystems refuse fsync on directories; the rename is still atomic */
  }
}

export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = tempPathFor(file);
  try {
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(file));
}

/** Moves a finished temp file into place (same directory, so rename is atomic). */
export async function commitFile(tmp: string, file: string): Promise<void> {
  await rename(tmp, file);
  await fsyncDir(dirname(file));
}

/**
 * Removes temp files left by a crashed writer: those older than
 * `olderThanMs`, and those whose writer (the pid in the name, see
 * tempPathFor) no longer exists on this host, so a publish killed with -9
 * leaves no half-written bundle behind for longer than it takes the next
 * one to start. `recursive` searches subdirectories too (dot directories
 * excepted).
 */
export async function removeStaleTemps(
  dir: string,
  olderThanMs = 60 * 60 * 1000,
  opts: { recursive?: boolean } = {},
): Promise<number> {
  let removed = 0;
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  const now = Date.now();
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (opts.recursive && !e.name.startsWith('.')) removed += await removeStaleTemps(p, olderThanMs, opts);
      continue;
    }
    if (!e.name.startsWith(TEMP_MARK)) continue;
    try {
      const st = await stat(p);
      const pid = /\.(\d+)\.[0-9a-f]{8}$/.exec(e.name);
      if (now - st.mtimeMs > olderThanMs || (pid && !(await processAlive(Number(pid[1]))))) {
        await rm(p, { force: true });
        removed += 1;
      }
    } catch {
      /* already gone */
    }
  }
  return removed;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
