/**
 * Chooses which bundles bring one replica repository to an index's state,
 * downloading as few bytes as possible. Pure: it is told which object ids
 * the replica already has and answers with an ordered list, or with `fetch`
 * when no bundle path applies or git's own negotiation is the better deal.
 *
 * Candidate paths, each walked in creationToken order:
 * - the incremental path: every non-base bundle (superseded ones included)
 *   whose tips the replica lacks, each applicable once the ones before it
 *   are; this is how a replica part-way along an old chain catches up after
 *   a collapse without the new base;
 * - a base path for each base: the base, then the incrementals after it.
 */
import type { BundleRef, RepoIndex } from '../../manifest/repo-index.js';

export type BundleChoice =
  | { kind: 'bundles'; bundles: BundleRef[]; bytes: number; reason: string }
  | { kind: 'fetch'; reason: string }
  | { kind: 'none'; reason: string };

export interface BundlePlanInput {
  index: RepoIndex;
  /** Object ids (prerequisites and tips from the index) already present locally. */
  present: Set<string>;
  /** Whether the replica already holds this repository (false: a fresh clone). */
  exists: boolean;
  /** Take a path through a full base even for an existing repository (no git fetch possible: an offline import). */
  allowBase?: boolean;
}

/** Every object id the planner may ask about: ask git once for all of them. */
export function idsToCheck(index: RepoIndex): string[] {
  const ids = new Set<string>(Object.values(index.refs));
  for (const b of index.bundles) {
    for (const p of b.prerequisites) ids.add(p);
    for (const t of Object.values(b.tips)) ids.add(t);
  }
  return [...ids].sort();
}

/**
 * Takes, in creationToken order, each bundle that brings something new and
 * whose prerequisites are met by what is here plus the bundles taken so
 * far. A bundle of another chain (a forkgroup member's old chain, say) is
 * passed over; the caller then checks that the path reaches every ref.
 */
function walk(
  start: BundleRef[],
  rest: BundleRef[],
  present: Set<string>,
): { bundles: BundleRef[]; have: Set<string> } | null {
  const have = new Set(present);
  const chosen: BundleRef[] = [];
  for (const b of start) {
    if (!b.prerequisites.every((p) => have.has(p))) return null;
    chosen.push(b);
    for (const t of Object.values(b.tips)) have.add(t);
  }
  for (const b of rest) {
    const tips = Object.values(b.tips);
    if (tips.length > 0 && tips.every((t) => have.has(t))) continue; // already here
    if (!b.prerequisites.every((p) => have.has(p))) continue;
    chosen.push(b);
    for (const t of tips) have.add(t);
  }
  return { bundles: chosen, have };
}

export function planBundles({ index, present, exists, allowBase = false }: BundlePlanInput): BundleChoice {
  const wanted = Object.values(index.refs);
  if (wanted.every((o) => present.has(o))) return { kind: 'none', reason: 'every ref of the index is already present' };
  const sorted = [...index.bundles].sort((a, b) => a.creationToken - b.creationToken);
  if (sorted.length === 0) return { kind: 'fetch', reason: 'the index lists no bundles' };

  const candidates: { bundles: BundleRef[]; bytes: number; reason: string; complete: boolean }[] = [];
  const incrementals = sorted.filter((b) => b.prerequisites.length > 0);
  if (exists || present.size > 0) {
    const inc = walk([], incrementals, present);
    if (inc && inc.bundles.length > 0) {
      candidates.push({
        bundles: inc.bundles,
        bytes: sum(inc.bundles),
        reason: `${inc.bundles.length} incremental bundle(s) on top of what is here`,
        complete: wanted.every((o) => inc.have.has(o)),
      });
    }
  }
  for (const base of sorted.filter((b) => b.prerequisites.length === 0)) {
    // a live base continues with the live chain; an old one may need the old chain and then the live one
    const after = incrementals.filter(
      (b) => b.creationToken > base.creationToken && (base.superseded || !b.superseded),
    );
    const path = walk([base], after, present);
    if (!path) continue;
    candidates.push({
      bundles: path.bundles,
      bytes: sum(path.bundles),
      reason: `base ${base.superseded ? '(superseded) ' : ''}and ${path.bundles.length - 1} incremental bundle(s)`,
      complete: wanted.every((o) => path.have.has(o)),
    });
  }
  // a complete path beats an incomplete one; then fewer bytes
  candidates.sort((a, b) => Number(b.complete) - Number(a.complete) || a.bytes - b.bytes);
  if (candidates.length === 0 || (!candidates[0]!.complete && exists)) {
    return { kind: 'fetch', reason: 'no chain of bundles applies to what this replica has' };
  }
  const best = candidates[0]!;
  const base = best.bundles.find((b) => b.prerequisites.length === 0);
  if (exists && base && !allowBase) {
    // git fetch negotiates from the refs we already have; a full base would resend all of them
    return {
      kind: 'fetch',
      reason: `only a path through a full base (${best.bytes} bytes) applies; git fetch sends just what is missing`,
    };
  }
  return { kind: 'bundles', bundles: best.bundles, bytes: best.bytes, reason: best.reason };
}

function sum(bundles: BundleRef[]): number {
  return bundles.reduce((n, b) => n + b.size, 0);
}
