/**
 * Forkgroups: repositories that share history (the same root commits, or an
 * alternates link, or grokmirror's `forkgroup` already recorded). Each group
 * has a parent, the repository whose bundles the others build on, so the
 * shared history travels in one bundle and is stored once on a replica.
 * Pure: facts in, groups out.
 */
import { createHash } from 'node:crypto';
import { chooseParent } from '../manifest/tree.js';

export interface ForkFacts {
  path: string;
  /** Root commits reachable from the repository's refs. */
  roots: string[];
  /** Manifest paths of repositories whose objects this one borrows. */
  alternates: string[];
  /** The forkgroup the previous manifest gave it, if any. */
  previous: string | null;
}

export interface ForkGroup {
  id: string;
  parent: string;
  members: string[];
}

/** A stable, UUID-shaped id for a new group (grokmirror writes UUIDs there). */
export function forkgroupId(seed: string): string {
  const h = createHash('sha1').update(`bundlemirror-forkgroup:${seed}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function groupForks(facts: ForkFacts[]): Map<string, ForkGroup> {
  const parentOf = new Map<string, string>();
  const find = (x: string): string => {
    let p = parentOf.get(x) ?? x;
    while (p !== (parentOf.get(p) ?? p)) p = parentOf.get(p) ?? p;
    parentOf.set(x, p);
    return p;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parentOf.set(ra, rb);
  };
  const byRoot = new Map<string, string>();
  const byPrevious = new Map<string, string>();
  const known = new Set(facts.map((f) => f.path));
  const referencedBy = new Map<string, number>();
  for (const f of facts) {
    for (const r of f.roots) {
      const other = byRoot.get(r);
      if (other) union(f.path, other);
      else byRoot.set(r, f.path);
    }
    for (const a of f.alternates) {
      if (!known.has(a)) continue;
      union(f.path, a);
      referencedBy.set(a, (referencedBy.get(a) ?? 0) + 1);
    }
    if (f.previous) {
      const other = byPrevious.get(f.previous);
      if (other) union(f.path, other);
      else byPrevious.set(f.previous, f.path);
    }
  }
  const members = new Map<string, string[]>();
  for (const f of facts) {
    const root = find(f.path);
    members.set(root, [...(members.get(root) ?? []), f.path]);
  }
  const byPath = new Map(facts.map((f) => [f.path, f]));
  const result = new Map<string, ForkGroup>();
  for (const list of members.values()) {
    if (list.length < 2) continue;
    list.sort();
    // keep an id already published for this group (the most common one), else derive one
    const counts = new Map<string, number>();
    for (const p of list) {
      const prev = byPath.get(p)!.previous;
      if (prev) counts.set(prev, (counts.get(prev) ?? 0) + 1);
    }
    const kept = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0];
    const allRoots = list.flatMap((p) => byPath.get(p)!.roots).sort();
    const id = kept ?? forkgroupId(allRoots[0] ?? list[0]!);
    const group: ForkGroup = { id, parent: chooseParent(list, referencedBy), members: list };
    for (const p of list) result.set(p, group);
  }
  return result;
}
