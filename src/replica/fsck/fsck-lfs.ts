/**
 * fsck of a repository's Git LFS objects: every file in `lfs/objects/`
 * must hash to its name. A corrupt object is repaired on its own, without
 * re-cloning the repository: the file is removed under the pull lock and
 * the ordinary sync downloads it again, verified, from the origin.
 */
import { rm } from 'node:fs/promises';
import { corruptLfsObjects } from '../../lfs/store.js';

const LFS_PROBLEM = 'LFS object ';

export async function lfsProblems(dir: string): Promise<string[]> {
  return (await corruptLfsObjects(dir)).map((b) => `${LFS_PROBLEM}${b.oid} is corrupt: its bytes hash to ${b.sha256}`);
}

/** True when every problem found is a corrupt LFS object (the git repository itself is healthy). */
export function onlyLfsProblems(problems: string[]): boolean {
  return problems.length > 0 && problems.every((p) => p.startsWith(LFS_PROBLEM));
}

/** Removes the corrupt objects found now; returns how many. */
export async function dropCorruptLfsObjects(dir: string): Promise<number> {
  const bad = await corruptLfsObjects(dir);
  for (const b of bad) await rm(b.path, { force: true });
  return bad.length;
}
