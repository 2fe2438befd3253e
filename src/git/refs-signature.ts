/**
 * Whether a repository's refs can have changed, without starting git.
 *
 * A full publish of 10,000 repositories that did not change would otherwise
 * run 10,000 `git show-ref`. The signature is the identity of every file
 * that holds refs in a files-backend repository (`packed-refs` and each
 * file under `refs/`, at any depth): name, inode, size, mtime and ctime in
 * nanoseconds. git writes a ref by renaming a new lock file over it, so an
 * update changes the inode and the ctime, which no tool can set back (an
 * rsync that restores mtimes still changes the ctime).
 *
 * A signature is trusted only when every file in it was last changed well
 * before it was taken ("racy git"): timestamps are coarse (a clock tick on
 * ext4, a second or two elsewhere), so a file changed in the same tick as
 * the look could change again without a visible difference. Callers compare
 * the whole signature and fall back to `git show-ref` on any difference; a
 * repository with a `reftable` directory, a lock file, or anything but
 * plain files and directories under refs/ gets no signature at all.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';

/** Files changed less than this long before the signature was taken make it untrusted. */
export const RACY_MS = 3000;

export interface RefsSignature {
  /** sha1 over the identities of the ref files. */
  signature: string;
  /** Whether every file was changed at least RACY_MS before `takenAt`: only then may it be recorded. */
  settled: boolean;
}

/*
 * The file system is asked synchronously: a publish of 10,000 repositories
 * makes some 50,000 of these calls, and each costs a few microseconds that
 * way against tens through the promise API's thread pool (measured: 0.4 s
 * against 2.8 s for everything publish reads of an unchanged repository).
 */
export async function refsSignature(gitDir: string, takenAt = Date.now()): Promise<RefsSignature | null> {
  const lines: string[] = [];
  let newest = 0;
  const add = (name: string, st: BigIntStats) => {
    lines.push(`${name}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`);
    newest = Math.max(newest, Number(st.mtimeMs), Number(st.ctimeMs));
  };
  try {
    if (lstatBig(join(gitDir, 'reftable'))) return null;
    const packed = lstatBig(join(gitDir, 'packed-refs'));
    if (packed && !packed.isFile()) return null;
    if (packed) add('packed-refs', packed);
    else lines.push('packed-refs\0absent');
    if (!walk(gitDir, 'refs', add)) return null;
  } catch {
    return null;
  }
  lines.sort();
  const signature = createHash('sha1').update(lines.join('\n')).digest('hex');
  return { signature, settled: newest < takenAt - RACY_MS };
}

function walk(gitDir: string, rel: string, add: (name: string, st: BigIntStats) => void): boolean {
  const st = lstatBig(join(gitDir, rel));
  if (!st?.isDirectory()) return false;
  add(`${rel}/`, st);
  for (const e of readdirSync(join(gitDir, rel), { withFileTypes: true })) {
    const name = `${rel}/${e.name}`;
    // a ref being written right now; git show-ref knows what to make of it
    if (e.name.endsWith('.lock')) return false;
    if (e.isDirectory()) {
      if (!walk(gitDir, name, add)) return false;
    } else if (e.isFile()) {
      const file = lstatBig(join(gitDir, name));
      if (!file) return false; // gone meanwhile: git knows what the refs are now
      add(name, file);
    } else {
      return false; // symlinks, sockets: not something to reason about without git
    }
  }
  return true;
}

/** lstat in nanoseconds; null when there is nothing there (other errors throw). */
function lstatBig(p: string): BigIntStats | null {
  return lstatSync(p, { bigint: true, throwIfNoEntry: false }) ?? null;
}
