/**
 * Publishes the LFS objects of one repository beside its index:
 * `<published repo>/lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>`, content-
 * addressed and never rewritten, hard-linked from the origin's store where
 * the filesystem allows (no second copy on disk).
 *
 * Incremental: only history added since the last publish is searched for
 * pointers, and objects already published are not touched again. A pointer
 * whose object the origin does not have is recorded as missing (and looked
 * for again by every later publish) rather than failing the repository:
 * the git history is still worth mirroring. A fork often has no copy of
 * the objects it shares with its parent: the stores of the repositories it
 * borrows git objects from are looked in too.
 */
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { existingObjects, type Ref } from '../git/repo.js';
import { lfsPointersReachable } from '../git/lfs-pointers.js';
import { lfsObjectPath, lfsObjectRelPath, lfsObjectsDir } from '../lfs/oid.js';
import { linkOrCopy, lfsObjectSize } from '../lfs/store.js';
import type { LfsObjectRef, RepoIndex } from '../manifest/repo-index.js';

export type IndexLfs = NonNullable<RepoIndex['lfs']>;

export interface LfsPublishResult {
  /** For index.json; undefined when the repository has no LFS store (nothing to publish, nothing recorded). */
  lfs: IndexLfs | undefined;
  /** Objects published by this run. */
  added: LfsObjectRef[];
  /** Objects named by a pointer that the origin's store lacks (or holds with another size). */
  missing: LfsObjectRef[];
}

const byOid = (a: LfsObjectRef, b: LfsObjectRef) => (a.oid < b.oid ? -1 : a.oid > b.oid ? 1 : 0);

async function hasLfsStore(repoDir: string): Promise<boolean> {
  try {
    // synchronous: asked of every repository by every publish (src/git/refs-signature.ts says why)
    return !!lstatSync(lfsObjectsDir(repoDir), { throwIfNoEntry: false })?.isDirectory();
  } catch {
    return false;
  }
}

/** True when a publish of an otherwise unchanged repository should still look at its LFS objects. */
export function lfsNeedsLook(prev: RepoIndex): boolean {
  return !prev.lfs || (prev.lfs.missing?.length ?? 0) > 0;
}

export async function publishLfsObjects(
  repoDir: string,
  outDir: string,
  repoPath: string,
  refs: Ref[],
  prev: RepoIndex | null,
  otherStores: string[] = [],
): Promise<LfsPublishResult> {
  const stores = [repoDir, ...otherStores];
  if (!(await hasLfsStore(repoDir)) && !(await Promise.all(otherStores.map(hasLfsStore))).some(Boolean)) {
    return { lfs: prev?.lfs, added: [], missing: prev?.lfs?.missing ?? [] };
  }
  const published = new Map((prev?.lfs?.objects ?? []).map((o) => [o.oid, o]));
  const tips = [...new Set(refs.map((r) => r.oid))];
  // with a previous LFS listing, only what the new history adds; else everything reachable
  const before = prev?.lfs ? [...new Set(Object.values(prev.refs))] : [];
  const known = before.length ? await existingObjects(repoDir, before, repoPath) : new Set<string>();
  const pointers = await lfsPointersReachable(
    repoDir,
    tips,
    before.filter((o) => known.has(o)),
    repoPath,
  );
  const wanted = new Map<string, LfsObjectRef>();
  for (const p of [...(prev?.lfs?.missing ?? []), ...pointers]) if (!published.has(p.oid)) wanted.set(p.oid, p);

  const added: LfsObjectRef[] = [];
  const missing: LfsObjectRef[] = [];
  for (const want of [...wanted.values()].sort(byOid)) {
    let from: string | null = null;
    for (const store of stores) {
      if ((await lfsObjectSize(store, want.oid)) === want.size) {
        from = store;
        break;
      }
    }
    if (from === null) {
      missing.push(want);
      continue;
    }
    await linkOrCopy(lfsObjectPath(from, want.oid), join(outDir, ...lfsObjectRelPath(want.oid).split('/')));
    published.set(want.oid, want);
    added.push(want);
  }
  const objects = [...published.values()].sort(byOid);
  return { lfs: missing.length ? { objects, missing } : { objects }, added, missing };
}
