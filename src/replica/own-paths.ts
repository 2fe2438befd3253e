/**
 * The replica's own files and directories (state, partial downloads,
 * staging, object stores, local manifest, projects.list, log): what no
 * manifest symlink may take the place of, and what is checked for symlinks
 * on the way before a run writes to it. The administrator may put any of
 * them outside the toplevel; only what lies under it is the replica's to
 * police.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { confinedAbsolute, confinedPath } from '../fs/confined.js';
import { guardMirrorRoot } from '../git/exec.js';
import type { PullConfig } from './config/config.js';
import { bundleCacheDir, emptyHooksDir, partialDir, stagingDir, stateDir, STATE_DIR } from './paths.js';

type OwnConfig = Pick<PullConfig, 'core' | 'pull'>;

/** Paths no manifest symlink may be at, under or above. */
export function reservedPaths(config: OwnConfig): string[] {
  const toplevel = config.core.toplevel;
  return [
    stateDir(toplevel),
    config.core.objstore,
    config.core.manifest,
    config.pull.projectslist,
    config.core.log,
  ].filter((p): p is string => !!p);
}

/** Refuses (E_SYMLINK) when a symlink lies on the way from the toplevel to any of the replica's own paths. */
export async function checkOwnPaths(config: OwnConfig): Promise<void> {
  const toplevel = config.core.toplevel;
  const state = stateDir(toplevel);
  const paths = [
    ...reservedPaths(config),
    partialDir(toplevel),
    bundleCacheDir(toplevel),
    stagingDir(toplevel),
    join(state, 'quarantine'),
    join(state, 'export'),
    emptyHooksDir(toplevel),
  ];
  for (const p of paths) await confinedAbsolute(toplevel, p, { what: 'replica files' });
}

/**
 * From here on, every git command this process runs on a repository under
 * the toplevel or the object store uses the replica's empty hooks
 * directory and writes no reflog (src/git/exec.ts). Creates the directory;
 * refuses to go on if something was put in it.
 */
async function guardMirrors(config: OwnConfig): Promise<string> {
  const toplevel = config.core.toplevel;
  const dir = await confinedPath(toplevel, [STATE_DIR, 'empty-hooks'], {
    what: 'the empty hooks directory',
    create: true,
  });
  if ((await readdir(dir)).length) {
    throw new BundlemirrorError(
      'E_TOPLEVEL',
      `${dir} is not empty; mirrors name it as the only place git may find hooks`,
      {
        hint: `remove what is in ${dir}; hooks for a replica belong in [pull] post_update_hook and friends`,
      },
    );
  }
  guardMirrorRoot(toplevel, dir);
  guardMirrorRoot(config.core.objstore, dir);
  return dir;
}

/** Before a run writes anything: the replica's own paths are free of symlinks, and git runs no hook in a mirror. */
export async function guardReplica(config: OwnConfig): Promise<void> {
  await checkOwnPaths(config);
  await guardMirrors(config);
}
