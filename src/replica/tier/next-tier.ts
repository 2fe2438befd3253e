/**
 * `[publish] out` after a pull: works out which repositories' copies lag and
 * hands them to the published copy (published-copy.ts), so this replica
 * serves the next tier what it verified.
 */
import pLimit from 'p-limit';
import type { Manifest } from '../../manifest/manifest.js';
import type { PullConfig } from '../config/config.js';
import { notSelected, type SyncPlan } from '../plan/planner.js';
import type { StateStore } from '../state.js';
import { syncContextFor } from '../sync/sync-context.js';
import { copyIsCurrent, updatePublishedCopy } from './published-copy.js';
import type { PullOptions, PullReport } from '../pull-options.js';

/** `[publish] out`: brings the copy of the origin's files this replica serves up to date (src/replica/tier/). */
export async function copyForNextTier(
  config: PullConfig,
  state: StateStore,
  opts: PullOptions,
  report: PullReport,
  run: {
    remote: Manifest;
    bytes: Buffer;
    published: string | null;
    plan: SyncPlan;
    partial: boolean;
    indexes: Map<string, { bytes: Buffer; signature: Buffer | undefined }>;
  },
): Promise<void> {
  if (opts.signal?.aborted) return;
  const out = config.publish.out!;
  const failed = new Set(report.failed.map((e) => e.repo));
  const mirrored = run.plan.actions
    .filter((a) => a.kind !== 'purge' && !failed.has(a.path) && run.remote[a.path])
    .map((a) => a.path);
  // synced repositories, and those whose copy lags (the copy is new, or a run failed half-way): one local read each
  const reads = pLimit(16);
  const stale = await Promise.all(
    run.plan.actions.map((a) =>
      reads(async () => {
        if (a.kind === 'purge' || failed.has(a.path) || !run.remote[a.path]) return false;
        return (
          a.kind === 'clone' ||
          a.kind === 'update' ||
          !!opts.force ||
          !(await copyIsCurrent(out, a.path, run.remote[a.path]!.fingerprint))
        );
      }),
    ),
  );
  const repos = run.plan.actions.filter((_, i) => stale[i]).map((a) => a.path);
  const selectedAll =
    report.problems.length === 0 && Object.keys(run.remote).every((p) => notSelected(p, config.pull) === null);
  const copy = await updatePublishedCopy({
    out,
    graceMs: config.publish.graceMs,
    manifestUrl: config.remote.manifest,
    manifestBytes: run.bytes,
    remote: run.remote,
    repos,
    whole: selectedAll,
    anyFailed: failed.size > 0 || run.partial,
    served: mirrored,
    indexes: run.indexes,
    sync: syncContextFor(config, { ...opts, manifestPublished: run.published }),
    concurrency: config.pull.pullThreads,
  });
  for (const e of copy.failed) {
    report.failed.push(e);
    opts.log.error(`published copy: ${e.describe()}`);
    await state.recordFailure(e.repo!, e).catch(() => undefined);
  }
  report.bytesDownloaded += copy.bytesDownloaded;
  opts.log.info(
    `published copy in ${out}: ${copy.copied.length} repositor${copy.copied.length === 1 ? 'y' : 'ies'} updated, ` +
      `${copy.bundlesReused} bundle(s) reused from this pull, manifest ${copy.manifest === 'origin' ? "the origin's" : copy.manifest === 'subset' ? 'of the mirrored part (unsigned)' : copy.manifest}`,
  );
}
