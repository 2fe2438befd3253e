/**
 * The order in which a pull carries out its plan. Members of one forkgroup
 * run one after the other, the group's parent first, so the history they
 * share is downloaded by the first and found in the shared store by the
 * rest; everything else runs in parallel. Pure.
 */
import type { Manifest } from '../../manifest/manifest.js';
import { chooseParent } from '../../manifest/tree.js';
import type { SyncAction } from './planner.js';

export function workOrder<A extends SyncAction>(actions: A[], remote: Manifest): A[][] {
  const groups = new Map<string, A[]>();
  const batches: A[][] = [];
  for (const a of actions) {
    const fg = a.kind === 'clone' || a.kind === 'update' ? remote[a.path]?.forkgroup : undefined;
    if (!fg) {
      batches.push([a]);
      continue;
    }
    const list = groups.get(fg);
    if (list) list.push(a);
    else {
      const fresh = [a];
      groups.set(fg, fresh);
      batches.push(fresh);
    }
  }
  // only a group of two or more needs a parent chosen: most runs have none, and need not read every entry
  let referencedBy: Map<string, number> | undefined;
  for (const list of groups.values()) {
    if (list.length < 2) continue;
    if (!referencedBy) {
      referencedBy = new Map();
      for (const e of Object.values(remote))
        if (e.reference) referencedBy.set(e.reference, (referencedBy.get(e.reference) ?? 0) + 1);
    }
    const parent = chooseParent(
      list.map((a) => a.path),
      referencedBy,
    );
    list.sort((a, b) => Number(b.path === parent) - Number(a.path === parent) || (a.path < b.path ? -1 : 1));
  }
  return batches;
}
