/**
 * Where things live on a replica, and the guard that keeps every write
 * inside the toplevel. Manifest paths come from the network: each is checked
 * by rule (repoPathProblem) and then walked on disk from the toplevel
 * (src/fs/confined.ts), so no symlink inside the toplevel, planted or made
 * from a manifest, can redirect a clone, a purge or a metadata write.
 */
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { confinedPath } from '../fs/confined.js';
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
/** The empty directory every mirror's core.hooksPath names: git finds no hook to run in a mirror. */
export function emptyHooksDir(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'empty-hooks');
}

/** The directory of a repository on the replica, after checking the path is safe to use. */
export async function repoDir(toplevel: string, manifestPath: string): Promise<string> {
  const problem = repoPathProblem(manifestPath);
  if (problem) throw new BundlemirrorError('E_UNSAFE_NAME', `repository path ${problem}`, { repo: manifestPath });
  return confinedPath(toplevel, manifestPath.slice(1).split('/'), { repo: manifestPath, what: 'the repository' });
}
