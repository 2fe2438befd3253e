/**
 * Writes the bundles one changed repository needs and returns its new list:
 * a base, an incremental on top of the last publish, or both when the chain
 * collapses. A forkgroup member's base is built on its parent's live chain:
 * the index lists the parent's bundles (by a path into the parent's
 * directory) plus one bundle of what the member adds, so the history they
 * share is published, downloaded and stored once. git builds that bundle
 * with the parent's objects in view, so a fork that lacks the parent's
 * newest commits (every real fork) still leaves out all the history the
 * parent's bundles bring: its prerequisites are then merge bases inside it.
 */
import { posix } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { borrowObjectsFrom, existingObjects, independentTips, readHead, type Ref } from '../git/repo.js';
import { storedBytes } from '../git/history.js';
import { currentBundles, type BundleRef, type RepoIndex } from '../manifest/repo-index.js';
import { decideBundle, expireSuperseded, shouldCollapse, type ChainPolicy } from './chain.js';
import { writeBundle, type WrittenBundle } from './bundle-writer.js';
import { writeSlices } from './slices.js';
import { writePartedBase } from './parted-base.js';
import type { FoundRepo } from '../git/discovery.js';

export interface ForkParent {
  path: string;
  /** The parent repository on disk. */
  dir: string;
  index: RepoIndex;
}

export interface BundleWork {
  repo: FoundRepo;
  outDir: string;
  prev: RepoIndex | null;
  refs: Ref[];
  nowMs: number;
  policy: ChainPolicy;
  /** Set for a forkgroup member other than the parent. */
  parent: ForkParent | null;
}

export interface MadeBundle {
  name: string;
  size: number;
  kind: 'base' | 'incremental';
}

export interface BundlePlanResult {
  bundles: BundleRef[];
  made: MadeBundle[];
}

/** A member whose borrowed base is no longer in its parent's live chain must be rebuilt on the new one. */
export function needsRebase(prev: RepoIndex | null, parent: ForkParent | null): boolean {
  if (!prev || !parent) return false;
  const base = currentBundles(prev)[0];
  if (!base || !base.uri.startsWith('../')) return true; // built before it joined the group
  return !currentBundles(parent.index).some((b) => b.sha256 === base.sha256);
}

export async function writeBundles(w: BundleWork): Promise<BundlePlanResult> {
  const { repo, prev } = w;
  const kept = prev ? expireSuperseded(prev.bundles, w.nowMs, w.policy) : [];
  const stamp = new Date(w.nowMs).toISOString();
  const borrowed = w.parent ? borrowedChain(repo.path, w.parent) : [];
  let token = Math.max(
    Math.floor(w.nowMs / 1000),
    1 + Math.max(0, ...kept.map((b) => b.creationToken), ...borrowed.map((b) => b.creationToken)),
  );
  const made: MadeBundle[] = [];
  /**
   * `after`: what an incremental builds on. git lists no prerequisite for a
   * bundle that only adds a tag to a published commit (no commit is walked);
   * the index still says what it applies on top of, so no planner mistakes
   * it for a base.
   */
  const entry = (b: WrittenBundle, superseded?: string, after: string[] = []): BundleRef => ({
    uri: b.name,
    sha256: b.sha256,
    size: b.size,
    creationToken: token++,
    prerequisites: b.header.prerequisites.length > 0 ? b.header.prerequisites : after,
    tips: Object.fromEntries(b.header.tips.filter((t) => t.name.startsWith('refs/')).map((t) => [t.name, t.oid])),
    ...(superseded ? { superseded } : {}),
  });
  const retire = (list: BundleRef[]) => list.map((b) => (b.superseded ? b : { ...b, superseded: stamp }));

  const base = async (): Promise<BundleRef[]> => {
    if (w.parent) {
      // only what the member adds to the history its parent's listed bundles bring
      const env = borrowObjectsFrom(w.parent.dir) ?? undefined;
      const chainTips = [...new Set(borrowed.flatMap((b) => Object.values(b.tips)))].sort();
      const have = await existingObjects(repo.dir, chainTips, repo.path, env);
      const excluded = chainTips.filter((t) => have.has(t));
      const own = await writeBundle(
        repo.dir,
        w.outDir,
        [...w.refs.map((r) => r.name), ...excluded.map((t) => `^${t}`)],
        repo.path,
        env,
      );
      if (!own) return borrowed;
      made.push({ name: own.name, size: own.size, kind: 'base' });
      // The index names what the bundle builds on by tips of the borrowed bundles (the
      // bundle's own prerequisites are merge bases no planner can see in an index):
      // the fewest whose history holds all of them.
      const onTopOf = await independentTips(repo.dir, excluded, repo.path, env);
      return [...borrowed, { ...entry(own), prerequisites: onTopOf.length > 0 ? onTopOf : own.header.prerequisites }];
    }
    const sliced = await writeSlices(
      repo.dir,
      w.outDir,
      w.refs,
      { slices: w.policy.slices ?? 1, sliceMinBytes: w.policy.sliceMinBytes ?? 0 },
      repo.path,
    );
    if (sliced) {
      for (const b of sliced) made.push({ name: b.name, size: b.size, kind: 'base' });
      return sliced.map((b, k) => (k === 0 ? entry(b) : { ...entry(b), slice: k }));
    }
    const parts = w.policy.parts ?? 1;
    if (parts >= 2 && (await storedBytes(repo.dir, repo.path)) >= (w.policy.partsMinBytes ?? 0)) {
      const b = await writePartedBase(
        repo.dir,
        w.outDir,
        w.refs,
        await readHead(repo.dir, repo.path),
        parts,
        repo.path,
      );
      made.push({ name: b.name, size: b.size, kind: 'base' });
      return [{ ...entry(b), ...(b.parts ? { parts: b.parts } : {}) }];
    }
    const full = await writeBundle(repo.dir, w.outDir, 'all', repo.path);
    if (!full)
      throw new BundlemirrorError('E_GIT', 'git produced no bundle for a repository with refs', { repo: repo.path });
    made.push({ name: full.name, size: full.size, kind: 'base' });
    return [entry(full)];
  };

  const decision = needsRebase(prev, w.parent) ? { kind: 'base' as const } : decideBundle(prev, w.refs);
  if (decision.kind === 'none') return { bundles: kept, made };
  if (decision.kind === 'base' || !prev) return { bundles: [...retire(kept), ...(await base())], made };

  // tips of the last publish can be gone (history rewritten, repository recreated): exclude only what still exists
  const present = await existingObjects(repo.dir, decision.prerequisites, repo.path);
  if (present.size === 0) return { bundles: [...retire(kept), ...(await base())], made };
  const onTopOf = decision.prerequisites.filter((p) => present.has(p));
  const inc = await writeBundle(repo.dir, w.outDir, [...decision.refs, ...onTopOf.map((p) => `^${p}`)], repo.path);
  if (!inc) return { bundles: kept, made }; // ref moves to objects already published: the new index is enough
  made.push({ name: inc.name, size: inc.size, kind: 'incremental' });
  if (!shouldCollapse(currentBundles(prev), inc.size, w.policy))
    return { bundles: [...kept, entry(inc, undefined, onTopOf)], made };
  // collapse: the bridging incremental stays listed with the old chain for replicas part-way along it
  const bridge = entry(inc, stamp, onTopOf);
  return { bundles: [...retire(kept), bridge, ...(await base())], made };
}

/** The parent's live chain, as seen from the member's directory. */
function borrowedChain(memberPath: string, parent: ForkParent): BundleRef[] {
  const up = posix.relative(memberPath, parent.path);
  return currentBundles(parent.index).map((b) =>
    /^https?:/.test(b.uri) || b.uri.startsWith('../') ? b : { ...b, uri: `${up}/${b.uri}` },
  );
}
