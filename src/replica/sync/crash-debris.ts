/**
 * What a git process killed mid-way leaves inside a bare repository, and
 * its removal before a pull works on that repository again (the caller
 * holds the toplevel's pull lock, so no other bundlemirror process is
 * writing there).
 *
 * - `objects/pack/tmp_pack_*`, `tmp_idx_*`: an unbundle or fetch that died
 *   while writing its pack (verified on git 2.39).
 * - `*.lock` files of a ref transaction (`refs/**`, `packed-refs.lock`,
 *   `HEAD.lock`, `config.lock`, `shallow.lock`): git never removes another
 *   process's lock, so after `kill -9` during `update-ref` or `fetch` every
 *   later update of those refs fails with "Unable to create ... .lock: File
 *   exists" until someone deletes them by hand. Only locks older than
 *   LOCK_AGE_MS are removed: git holds a ref lock for milliseconds, so an
 *   older one belongs to a dead process, while a younger one may belong to
 *   an administrator's git running right now (it is left alone, and the
 *   pull reports the failure and retries next time).
 * - `.bm-tmp-*` files of our own atomic writes (description, alternates)
 *   whose writer process is gone (src/fs/atomic.ts).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTemps } from '../../fs/atomic.js';

export const LOCK_AGE_MS = 1000;

const TOP_LEVEL_LOCKS = ['HEAD.lock', 'config.lock', 'packed-refs.lock', 'shallow.lock', 'FETCH_HEAD.lock'];

/** Removes the temporary files of packs git was writing (only when no git is writing into `dir`); returns their paths. */
export async function removeTempPacks(dir: string): Promise<string[]> {
  const removed: string[] = [];
  const packDir = join(dir, 'objects', 'pack');
  for (const name of await readdir(packDir).catch(() => [] as string[])) {
    if (!name.startsWith('tmp_pack_') && !name.startsWith('tmp_idx_')) continue;
    await rm(join(packDir, name), { force: true });
    removed.push(join('objects', 'pack', name));
  }
  return removed;
}

export async function removeCrashDebris(dir: string, now = Date.now()): Promise<string[]> {
  const removed = await removeTempPacks(dir);
  const removeIfOld = async (file: string, rel: string): Promise<void> => {
    try {
      const st = await stat(file);
      if (!st.isFile() || now - st.mtimeMs < LOCK_AGE_MS) return;
      await rm(file, { force: true });
      removed.push(rel);
    } catch {
      /* gone meanwhile */
    }
  };
  for (const name of TOP_LEVEL_LOCKS) await removeIfOld(join(dir, name), name);
  const walk = async (sub: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(join(dir, sub), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = join(sub, e.name);
      if (e.isDirectory()) await walk(rel);
      else if (e.name.endsWith('.lock')) await removeIfOld(join(dir, rel), rel);
    }
  };
  await walk('refs');
  // temp files of our own atomic writes (description, alternates) whose writer is gone
  await removeStaleTemps(dir);
  await removeStaleTemps(join(dir, 'objects', 'info'));
  return removed;
}
