/**
 * Operations on a person's working clone (for `bundlemirror clone`), as
 * opposed to the bare mirrors the rest of the project manages.
 */
import { BundlemirrorError } from '../errors.js';
import { git } from './exec.js';
import { refNameProblem } from './refname.js';

export async function initWorktree(dir: string, branch: string): Promise<void> {
  await git(['init', '--quiet', `--initial-branch=${branch}`, '--end-of-options', dir]);
}

export async function setRemote(dir: string, name: string, url: string): Promise<void> {
  if (url.startsWith('-'))
    throw new BundlemirrorError('E_UNSAFE_NAME', `remote URL ${JSON.stringify(url)} starts with "-"`);
  // no URL: a remote that only names where its branches are tracked (a clone from a file: tree without --git-url)
  if (url !== '') await git(['config', `remote.${name}.url`, url], { cwd: dir });
  await git(['config', '--replace-all', `remote.${name}.fetch`, `+refs/heads/*:refs/remotes/${name}/*`], { cwd: dir });
}

export async function fetchRemote(dir: string, name: string, onProgress?: (line: string) => void): Promise<void> {
  await git(['fetch', '--quiet', '--tags', '--end-of-options', name], { cwd: dir, onStderr: onProgress });
}

/** Creates `branch` tracking `<remote>/<branch>` and checks it out. */
export async function checkoutTracking(dir: string, remote: string, branch: string): Promise<void> {
  const problem = refNameProblem(`refs/heads/${branch}`);
  if (problem) throw new BundlemirrorError('E_UNSAFE_NAME', `branch ${JSON.stringify(branch)} ${problem}`);
  await git(['checkout', '--quiet', '-B', branch, '--track', `${remote}/${branch}`], { cwd: dir });
  await git(['symbolic-ref', `refs/remotes/${remote}/HEAD`, `refs/remotes/${remote}/${branch}`], { cwd: dir });
}
