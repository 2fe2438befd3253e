/**
 * `fsck --repack`: one pack per repository, with a bitmap where the
 * repository owns all its objects, delta islands in forkgroup stores.
 */
import { forRepo } from '../../errors.js';
import { configSet } from '../../git/repo.js';
import { configGetAll, repackAll } from '../../git/maintenance.js';
import { readAlternates } from '../../git/inspect.js';
import type { PullLog } from '../log.js';
import type { Target } from './fsck-targets.js';
import { describeError, type FsckRepoReport } from './fsck-report.js';

/** The refs a store keeps per member live under refs/virtual/<member id>/ (objstore.ts): one delta island each. */
const STORE_ISLAND = 'refs/virtual/([0-9a-f]+)/';

export async function repackOne(
  t: Target,
  report: FsckRepoReport,
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
    await repackAll(t.dir, t.path, { bitmaps: !borrows, local: borrows, deltaIslands: islands, signal: opts.signal });
    report.repacked = true;
    opts.log.debug(
      `${t.path}: repacked${islands ? ' with delta islands' : ''}${borrows ? ' (local objects only)' : ''}`,
    );
  } catch (err) {
    const e = forRepo(err, t.path);
    report.error = describeError(e);
    opts.log.error(`${t.path}: repack failed: ${e.message}`);
  }
}
