/**
 * `clone file:///mnt/pub/pub/project.git`: a repository of a published tree
 * on a mounted filesystem. The tree's root is the nearest directory above
 * the repository that holds the manifest; every file the clone reads must
 * stay under it (the download door refuses the rest). git fetch never reads
 * a local repository, so the remainder comes only from `--git-url` over
 * the network, when given.
 */
import { stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BundlemirrorError } from '../errors.js';
import { isLocalGitUrl } from '../git/repo.js';
import { repoPathProblem } from '../git/refname.js';
import { indexUrl, MANIFEST_FILE } from '../manifest/tree.js';
import type { CloneTarget } from './clone.js';

export async function resolveFileCloneUrl(url: URL, gitUrl: string | undefined): Promise<CloneTarget> {
  let dir: string;
  try {
    dir = fileURLToPath(url).replace(/\/+$/, '');
  } catch (err) {
    throw new BundlemirrorError('E_USAGE', `${url.href} is not a file: URL of this machine`, { cause: err });
  }
  dir = dir.replace(/\/(index\.json|bundle-list)$/, '');
  if (gitUrl !== undefined && isLocalGitUrl(gitUrl))
    throw new BundlemirrorError('E_USAGE', `--git-url ${gitUrl} is a local repository`, {
      hint: 'git fetch never reads a local repository (git would trust its config and alternates); give the origin over the network, or no --git-url',
    });
  const root = await treeRootAbove(dir);
  if (root === null)
    throw new BundlemirrorError('E_USAGE', `no ${MANIFEST_FILE} in any directory above ${dir}`, {
      hint: 'a file: URL must name a repository inside a published tree (the directory publish --bundles wrote)',
    });
  const path = '/' + relative(root, dir).split(sep).join('/');
  const problem = repoPathProblem(path);
  if (problem) throw new BundlemirrorError('E_USAGE', `repository path ${JSON.stringify(path)} ${problem}`);
  const treeRoot = pathToFileURL(root + '/').href;
  return { indexUrl: indexUrl(treeRoot, path), repo: path, gitUrl: gitUrl ?? '', treeRoot };
}

async function treeRootAbove(dir: string): Promise<string | null> {
  for (let d = dirname(dir); ; d = dirname(d)) {
    const found = await stat(join(d, MANIFEST_FILE)).then(
      (s) => s.isFile(),
      () => false,
    );
    if (found) return d;
    if (dirname(d) === d) return null;
  }
}
