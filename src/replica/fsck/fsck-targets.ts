/**
 * What `fsck` checks: every bare repository under the toplevel and every
 * forkgroup store under `[core] objstore`, each repository knowing the
 * store it borrows objects from; or the repositories named on the command
 * line, with their stores.
 */
import { readdir, realpath } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { BundlemirrorError } from '../../errors.js';
import { readAlternates } from '../../git/inspect.js';
import { isBareRepository, scanToplevel } from '../../git/discovery.js';
import { manifestPathOf } from '../../manifest/tree.js';
import type { PullConfig } from '../config/config.js';
import { repoDir } from '../paths.js';

export interface Target {
  path: string;
  dir: string;
  kind: 'repository' | 'objstore';
  /** For a repository: the store directory it borrows objects from, if any. */
  store: string | null;
}

/** Every mirrored repository under the toplevel, and every forkgroup store under `[core] objstore`. */
export async function collectTargets(config: PullConfig): Promise<Target[]> {
  const toplevel = config.core.toplevel;
  const objstore = config.core.objstore;
  const storePrefix = manifestPathOf(toplevel, objstore);
  const storesInside = !storePrefix.startsWith('/..');
  const found = await scanToplevel(
    toplevel,
    (p) => storesInside && (p === storePrefix || p.startsWith(storePrefix + '/')),
  );
  const stores: Target[] = [];
  for (const name of (await readdir(objstore).catch(() => [] as string[])).sort()) {
    const dir = join(objstore, name);
    if (name.endsWith('.git') && (await isBareRepository(dir)))
      stores.push({ path: storesInside ? manifestPathOf(toplevel, dir) : dir, dir, kind: 'objstore', store: null });
  }
  const storeDirs = new Set(stores.map((s) => s.dir));
  const repos = await Promise.all(
    found.map(async (f): Promise<Target> => {
      const borrowed = (await readAlternates(f.dir)).find((d) => storeDirs.has(d));
      return { path: f.path, dir: f.dir, kind: 'repository', store: borrowed ?? null };
    }),
  );
  return [...repos, ...stores];
}

/** REPO arguments (a manifest path, or a directory under the toplevel, what a hook has as $PWD), plus the stores they borrow from. */
export async function namedTargets(toplevel: string, names: string[], everything: Target[]): Promise<Target[]> {
  const top = await realpath(toplevel);
  const out = new Map<string, Target>();
  for (const name of names) {
    let path = name;
    const real = await realpath(resolve(name)).catch(() => null);
    if (real && real.startsWith(top + sep)) path = manifestPathOf(top, real);
    const dir = await repoDir(toplevel, path);
    const target = everything.find((t) => t.dir === dir || t.path === path);
    if (!target) {
      throw new BundlemirrorError('E_USAGE', `${name}: no repository at ${dir}`, {
        hint: 'name repositories by manifest path (/pub/a.git) or by their directory under the toplevel',
      });
    }
    out.set(target.dir, target);
    const store = everything.find((t) => t.kind === 'objstore' && t.dir === target.store);
    if (store) out.set(store.dir, store);
  }
  return [...out.values()];
}
