/**
 * The manifest's `symlinks`: other names under the toplevel for a
 * repository, made as grokmirror makes them (a relative link). They come
 * from the network, so a link is made only where it cannot be used to
 * reach anything but its repository:
 *
 * - at a plain path: every directory on the way from the toplevel is a real
 *   directory (no symlink, not even one of ours: a link written through a
 *   deeper link is how an origin would climb out of the toplevel);
 * - outside every repository (on disk or in the manifest), the forkgroup
 *   object store, the state directory, and the replica's own files (local
 *   manifest, projects.list, log);
 * - and once made, its real path must be exactly its repository's.
 *
 * Anything else is refused with a warning (E_SYMLINK) naming the link and
 * its repository; the repository itself still syncs.
 */
import { lstat, readlink, realpath, rm, symlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { confinedPath } from '../fs/confined.js';
import type { Manifest } from '../manifest/manifest.js';
import { isBareRepository } from '../git/discovery.js';
import { repoDir } from './paths.js';

export interface SymlinkPlaces {
  toplevel: string;
  /** Absolute paths no link may be at or under (object store, state directory, own files). */
  reserved: readonly string[];
}

export interface SymlinkOutcome {
  made: string[];
  kept: string[];
  refused: BundlemirrorError[];
}

/** Creates (or corrects) the links listed for `repos`, which synced; returns what it did and what it refused. */
export async function syncManifestSymlinks(
  places: SymlinkPlaces,
  remote: Manifest,
  repos: readonly string[],
): Promise<SymlinkOutcome> {
  const out: SymlinkOutcome = { made: [], kept: [], refused: [] };
  // listed once, and only when a link is to be made: most repositories have none
  let repositories: string[] | undefined;
  for (const repo of repos) {
    for (const link of remote[repo]?.symlinks ?? []) {
      try {
        repositories ??= Object.keys(remote);
        const r = await makeLink(places, repositories, repo, link);
        out[r].push(link);
      } catch (err) {
        out.refused.push(refusal(repo, link, err));
      }
    }
  }
  return out;
}

function refusal(repo: string, link: string, err: unknown): BundlemirrorError {
  const why = err instanceof BundlemirrorError ? err.message : (err as Error).message;
  return new BundlemirrorError('E_SYMLINK', `symlink ${link} refused: ${why}`, {
    repo,
    hint: 'the origin lists a symlink the replica will not make; the repository itself is mirrored',
    cause: err,
  });
}

function refuse(message: string): never {
  throw new BundlemirrorError('E_SYMLINK', message);
}

async function makeLink(
  places: SymlinkPlaces,
  repositories: readonly string[],
  repo: string,
  link: string,
): Promise<'made' | 'kept'> {
  const { toplevel } = places;
  if (link === repo) refuse('it is the repository itself');
  const clash = repositories.find((r) => link === r || link.startsWith(r + '/') || r.startsWith(link + '/'));
  if (clash)
    refuse(
      `it would be ${link === clash ? 'the repository' : link.startsWith(clash + '/') ? 'inside the repository' : 'above the repository'} ${clash}`,
    );
  const parts = link.slice(1).split('/');
  const linkPath = join(toplevel, ...parts);
  for (const r of places.reserved) {
    if (linkPath === r || linkPath.startsWith(r + '/') || r.startsWith(linkPath + '/'))
      refuse(`${r} belongs to the replica`);
  }
  const repoPath = await repoDir(toplevel, repo);
  // every directory on the way: real, and not a repository
  await confinedPath(toplevel, parts.slice(0, -1), { what: 'a symlink' });
  for (let i = 1; i < parts.length; i += 1) {
    const dir = join(toplevel, ...parts.slice(0, i));
    if (await isBareRepository(dir)) refuse(`${dir} is a repository`);
  }
  const target = relative(dirname(linkPath), repoPath);
  const st = await lstat(linkPath).catch(() => null);
  if (st && !st.isSymbolicLink()) refuse(`${linkPath} exists and is not a symlink; leaving it alone`);
  if (st && (await readlink(linkPath)) === target && (await pointsAt(linkPath, repoPath))) return 'kept';
  if (st) await rm(linkPath);
  await confinedPath(toplevel, parts.slice(0, -1), { what: 'a symlink', create: true });
  await symlink(target, linkPath);
  if (!(await pointsAt(linkPath, repoPath))) {
    await rm(linkPath, { force: true });
    refuse(`it does not lead to ${repoPath}`);
  }
  return 'made';
}

async function pointsAt(linkPath: string, repoPath: string): Promise<boolean> {
  const [a, b] = await Promise.all([realpath(linkPath).catch(() => null), realpath(repoPath).catch(() => null)]);
  return a !== null && a === b;
}
