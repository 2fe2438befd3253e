/**
 * Decides what a publish writes for one changed repository: a base bundle,
 * an incremental one on top of the last published tips, and when the chain
 * has grown too long, a fresh base as well. Pure: no git, no disk.
 *
 * A collapse writes the incremental too and lists it (superseded) with the
 * old chain, so a replica part-way along the old chain still catches up with
 * small downloads instead of fetching the new base.
 */
import type { Ref } from '../git/repo.js';
import { DEFAULT_SLICE_MIN_BYTES, type SlicePolicy } from './slices.js';
import { DEFAULT_PARTS, DEFAULT_PARTS_MIN_BYTES, type PartsPolicy } from './parted-base.js';
import { currentBundles, type BundleRef, type RepoIndex } from '../manifest/repo-index.js';

export interface ChainPolicy extends Partial<SlicePolicy>, Partial<PartsPolicy> {
  /** Incrementals on top of one base before a new base is written. */
  maxIncrementals: number;
  /** New base once the incrementals add up to this fraction of the base's size. */
  maxChainRatio: number;
  /** How long superseded bundles stay listed and on disk. */
  graceMs: number;
}

export const DEFAULT_CHAIN_POLICY: ChainPolicy = {
  maxIncrementals: 24,
  maxChainRatio: 0.5,
  graceMs: 7 * 24 * 60 * 60 * 1000,
  slices: 1,
  sliceMinBytes: DEFAULT_SLICE_MIN_BYTES,
  parts: DEFAULT_PARTS,
  partsMinBytes: DEFAULT_PARTS_MIN_BYTES,
};

export type BundleDecision =
  { kind: 'base' } | { kind: 'incremental'; refs: string[]; prerequisites: string[] } | { kind: 'none' };

/** What to bundle, given the last published index and the refs now. */
export function decideBundle(prev: RepoIndex | null, current: Ref[]): BundleDecision {
  const live = prev ? currentBundles(prev) : [];
  if (!prev || live.length === 0 || live[0]!.prerequisites.length > 0) return { kind: 'base' };
  const changed = current.filter((r) => prev.refs[r.name] !== r.oid).map((r) => r.name);
  if (changed.length === 0) return { kind: 'none' };
  const prerequisites = [...new Set(Object.values(prev.refs))].sort();
  return { kind: 'incremental', refs: changed, prerequisites };
}

export function shouldCollapse(chain: BundleRef[], newIncrementalSize: number, policy: ChainPolicy): boolean {
  const base = chain[0];
  if (!base) return false;
  // the slices of a sliced base are the base
  const baseSize = chain.filter((b, i) => i === 0 || b.slice !== undefined).reduce((n, b) => n + b.size, 0);
  const incrementals = chain.slice(1).filter((b) => b.slice === undefined);
  const count = incrementals.length + 1;
  const size = incrementals.reduce((n, b) => n + b.size, 0) + newIncrementalSize;
  return count > policy.maxIncrementals || size > policy.maxChainRatio * baseSize;
}

/** Drops superseded entries whose grace period is over. */
export function expireSuperseded(bundles: BundleRef[], nowMs: number, policy: ChainPolicy): BundleRef[] {
  return bundles.filter((b) => !b.superseded || nowMs - Date.parse(b.superseded) < policy.graceMs);
}
