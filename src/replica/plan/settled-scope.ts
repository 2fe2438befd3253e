/**
 * A plan of the changed entries alone. When the manifest was read as an
 * edit of the one the last complete run settled (src/manifest/manifest-edit.ts),
 * every other entry is as it was then: verified at its fingerprint, with its
 * metadata, its links made, nothing filtered, failed or left over (what
 * "settled" requires). Planning them again would only say `skip` 9,999
 * times, so they are counted, not planned.
 *
 * That holds only where nothing needs the whole picture: a removed entry
 * or purge (purge candidates and purgeprotect are judged against every
 * repository), and the books written from every entry ([publish] out,
 * projects.list); those runs plan the whole manifest, with the edit as a
 * hint (SyncInput.changed).
 */
import type { Manifest } from '../../manifest/manifest.js';
import type { RepoState } from '../state-file.js';
import { settledCurrent, type SyncPlan } from './planner.js';

export interface SettledScope {
  /** The changed entries still in the manifest. */
  remote: Manifest;
  /** What is recorded for them. */
  recorded: Record<string, RepoState>;
  /** The entries left out: unchanged and in sync. */
  settled: number;
}

export function settledScope(
  remote: Manifest,
  /** How many entries `remote` holds (counting a large table's keys is not free). */
  size: number,
  recorded: Readonly<Record<string, RepoState>>,
  changed: ReadonlySet<string>,
): SettledScope {
  const scope: SettledScope = { remote: {}, recorded: {}, settled: 0 };
  for (const path of changed) {
    if (Object.hasOwn(remote, path)) scope.remote[path] = remote[path]!;
    if (Object.hasOwn(recorded, path)) scope.recorded[path] = recorded[path]!;
  }
  // an untouched entry is settled only while the state still holds it at that entry's fingerprint: a
  // sync that kept the newer refs an index vouched for, or an fsck repair, records another one, which a
  // full plan updates (a comparison per entry, no I/O)
  for (const path in remote) {
    if (changed.has(path) || settledCurrent(remote[path]!, recorded[path])) continue;
    scope.remote[path] = remote[path]!;
    if (Object.hasOwn(recorded, path)) scope.recorded[path] = recorded[path]!;
  }
  scope.settled = size - Object.keys(scope.remote).length;
  return scope;
}

/** The plan of the changed entries, counting the settled ones as skipped. */
export function withSettled(plan: SyncPlan, settled: number): SyncPlan {
  return {
    ...plan,
    settled,
    summary: { ...plan.summary, skip: plan.summary.skip + settled, total: plan.summary.total + settled },
  };
}
