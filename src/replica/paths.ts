/**
 * Where things live on a replica, and the guard that keeps every write
 * inside the toplevel. Manifest paths come from the network: each is checked
 * by rule (repoPathProblem) and then against the disk, so a symlink planted
 * inside the toplevel cannot redirect a clone elsewhere.
 */
import { lstat, realpath } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { repoPathProblem } from '../git/refname.js';

export const STATE_DIR = '.bundlemirror';

export function stateDir(toplevel: string): string {
  return join(toplevel, STATE_DIR);
}
export function partialDir(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'partial');
}
export function bundleCacheDir(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'bundles');
}
export function stagingDir(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'staging');
}

/** The directory of a repository on the replica, after checking the path is safe to use. */
export async function repoDir(toplevel: string, manifestPath: string): Promise<string> {
  const problem = repoPathProblem(manifestPath);
  if (problem) throw new BundlemirrorError('E_UNSAFE_NAME', `repository path ${problem}`, { repo: manifestPath });
  const dir = join(toplevel, ...manifestPath.slice(1).split('/'));
  await assertInside(toplevel, dir, manifestPath);
  return dir;
}

/**
 * The deepest part of `dir` that exists must resolve inside the toplevel,
 * and the repository directory itself must not be a symlink.
 */
export async function assertInside(toplevel: string, dir: string, repo: string): Promise<void> {
  const top = await realpath(toplevel);
  let probe = dir;
  for (;;) {
    try {
      const st = await lstat(probe);
      if (probe === dir && st.isSymbolicLink()) {
        throw new BundlemirrorError('E_UNSAFE_NAME', `${dir} is a symlink; refusing to write through it`, {
          repo,
          hint: 'remove the symlink; bundlemirror manages symlinks from the manifest itself',
        });
      }
      const real = await realpath(probe);
      if (real !== top && !real.startsWith(top + sep)) {
        throw new BundlemirrorError('E_UNSAFE_NAME', `${dir} resolves outside the toplevel (${real})`, { repo });
      }
      return;
    } catch (err) {
      if (err instanceof BundlemirrorError) throw err;
      const parent = dirname(probe);
      if (parent === probe) return;
      probe = parent;
    }
  }
}
