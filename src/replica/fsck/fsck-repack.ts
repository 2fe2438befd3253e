/**
 * `fsck --repack` (`[fsck] repack = yes`): one pack per repository, with a
 * bitmap where the repository owns all its objects, delta islands in
 * forkgroup stores, and a commit-graph. Every `full_repack_every`th repack
 * of a repository recomputes its deltas (`-f`).
 */
import { forRepo } from '../../errors.js';
import { configSet } from '../../git/repo.js';
import { configGetAll, repackAll, writeCommitGraph } from '../../git/maintenance.js';
import { readAlternates } from '../../git/inspect.js';
import type { PullLog } from '../log.js';
import type { Target } from './fsck-targets.js';
import { describeError, type FsckRepoReport } from './fsck-report.js';

/** The refs a store keeps per member live under refs/virtual/<member id>/ (objstore.ts): one delta island each. */
const STORE_ISLAND = 'refs/virtual/([0-9a-f]+)/';

export interface RepackChoice {
  /** Recompute every delta (`-f` plus `[fsck] extra_repack_flags_full`). */
  full: boolean;
  /** `[fsck] extra_repack_flags`. */
  extraFlags: readonly string[];
  extraFlagsFull: readonly string[];
  /** `[fsck] commitgraph`. */
  commitGraph: boolean;
}

/** Whether this repack of a repository is a full one: every `every`th (0: never), counting from its record. */
export function isFullRepack(repacksSinceFull: number, every: number): boolean {
  return every > 0 && repacksSinceFull >= every - 1;
}

export async function repackOne(
  t: Target,
  report: FsckRepoReport,
  choice: RepackChoice,
  opts: { log: PullLog; signal?: AbortSignal },
): Promise<void> {
  try {
    if (t.kind === 'objstore') {
      // one delta island per member, as grokmirror configures its object stores: no member's pack borrows from another's history
      if ((await configGetAll(t.dir, 'pack.island', t.path)).length === 0)
        await configSet(t.dir, 'pack.island', STORE_ISLAND, t.path);
    }
    const islands = (await configGetAll(t.dir, 'pack.island', t.path)).length > 0;
    // objects borrowed through alternates stay in their store (-l), and a pack that leaves them out cannot carry a bitmap
    const borrows = (await readAlternates(t.dir)).length > 0;
    await repackAll(t.dir, t.path, {
      bitmaps: !borrows,
      local: borrows,
      deltaIslands: islands,
      full: choice.full,
      extraFlags: [...choice.extraFlags, ...(choice.full ? choice.extraFlagsFull : [])],
      signal: opts.signal,
    });
    report.repacked = true;
    if (choice.full) report.fullRepack = true;
    // a graph written in a repository that borrows would describe commits it does not own
    if (choice.commitGraph && !borrows) await writeCommitGraph(t.dir, t.path, { signal: opts.signal });
    opts.log.debug(
      `${t.path}: ${choice.full ? 'fully ' : ''}repacked${islands ? ' with delta islands' : ''}${borrows ? ' (local objects only)' : ''}`,
    );
  } catch (err) {
    const e = forRepo(err, t.path);
    report.error = describeError(e);
    opts.log.error(`${t.path}: repack failed: ${e.message}`);
  }
}
