/**
 * Finds the bare repositories under a toplevel, at any depth, the way an
 * origin's file tree actually looks: nested groups (`pub/scm/linux/...`),
 * symlinked aliases, and directories that are not repositories at all.
 * Symlinks are never followed while walking (no loops, no escapes); a
 * symlink that resolves to a repository inside the toplevel is recorded as
 * one of that repository's `symlinks`, as grokmirror does.
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { manifestPathOf } from '../manifest/tree.js';

export interface FoundRepo {
  /** Manifest path: `/pub/a.git`. */
  path: string;
  /** Absolute directory on disk. */
  dir: string;
  /** Manifest paths of symlinks that point at this repository. */
  symlinks: string[];
}

export async function isBareRepository(dir: string): Promise<boolean> {
  try {
    // synchronous: a publish and a pull ask this of every repository of the collection (src/git/refs-signature.ts says why)
    const head = statSync(join(dir, 'HEAD'), { throwIfNoEntry: false });
    if (!head?.isFile()) return false;
    return (
      !!statSync(join(dir, 'objects'), { throwIfNoEntry: false })?.isDirectory() &&
      !!statSync(join(dir, 'refs'), { throwIfNoEntry: false })?.isDirectory()
    );
  } catch {
    return false;
  }
}

/** The toplevel's real path, or E_TOPLEVEL saying what is wrong with it. */
export async function resolveToplevel(toplevel: string): Promise<string> {
  try {
    const top = await realpath(toplevel);
    if (!(await stat(top)).isDirectory()) throw new Error('not a directory');
    return top;
  } catch (err) {
    throw new BundlemirrorError(
      'E_TOPLEVEL',
      `toplevel ${toplevel} is not a readable directory: ${(err as Error).message}`,
      {
        hint: 'pass --toplevel the directory that holds your bare repositories',
      },
    );
  }
}

/**
 * The manifest path of a bare repository directory inside the toplevel, or
 * undefined (outside, or not a repository). For looking up one directory
 * without walking the whole toplevel.
 */
export async function repoPathOfDir(top: string, dir: string): Promise<string | undefined> {
  try {
    const real = await realpath(dir);
    if (!real.startsWith(top + sep) || !(await isBareRepository(real))) return undefined;
    return manifestPathOf(top, real);
  } catch {
    return undefined;
  }
}

export async function scanToplevel(
  toplevel: string,
  ignore: (path: string) => boolean = () => false,
): Promise<FoundRepo[]> {
  const top = await resolveToplevel(toplevel);
  const repos = new Map<string, FoundRepo>();
  const links: { path: string; target: string }[] = [];

  async function walk(dir: string): Promise<void> {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // unreadable subdirectory: not ours to publish
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const full = join(dir, e.name);
      const path = manifestPathOf(top, full);
      if (e.isSymbolicLink()) {
        links.push({ path, target: full });
        continue;
      }
      if (!e.isDirectory()) continue;
      if (ignore(path)) continue;
      if (await isBareRepository(full)) {
        repos.set(full, { path, dir: full, symlinks: [] });
        continue; // never descend into a repository
      }
      await walk(full);
    }
  }
  await walk(top);

  for (const link of links) {
    if (ignore(link.path)) continue;
    try {
      const real = await realpath(link.target);
      const repo = repos.get(real);
      if (repo && (await lstat(link.target)).isSymbolicLink()) repo.symlinks.push(link.path);
    } catch {
      /* dangling link */
    }
  }
  const found = [...repos.values()];
  for (const r of found) r.symlinks.sort();
  return found.sort((a, b) => (a.path < b.path ? -1 : 1));
}
