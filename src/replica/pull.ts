/**
 * One `pull` run: poll the manifest (manifest-poll.ts), plan, act
 * (carry-out.ts), record. The planner decides (pure, see planner.ts); this
 * module runs the actions in order and keeps the books: state after
 * verification, the local manifest, projects.list, symlinks and hooks, as
 * grok-pull does.
 */
import { rm, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pLimit from 'p-limit';
import { forRepo, isInterruption, type InterruptedError } from '../errors.js';
import { removeStaleTemps } from '../fs/atomic.js';
import { parseManifest, readManifestIfAny } from '../manifest/manifest.js';
import { parseManifestEdit } from '../manifest/manifest-edit.js';
import { MirrorSet } from '../transfer/mirrors.js';
import type { DownloadProgress } from '../transfer/download.js';
import { checkToplevel, type PullConfig } from './config/config.js';
import { planSync, type WorkAction } from './plan/planner.js';
import { openState, type StateStore } from './state.js';
import { acquireToplevelLock } from './toplevel-lock.js';
import { runPostCloneCompleteHooks, runPostUpdateHooks, runPostWorkCompleteHooks } from './hooks.js';
import { writeProjectsList } from './projects-list.js';
import { repoDir, stateDir, partialDir, stagingDir, bundleCacheDir } from './paths.js';
import type { SyncResult } from './sync/sync-repo.js';
import { checkOwnPaths, guardReplica, reservedPaths } from './own-paths.js';
import { syncManifestSymlinks } from './symlinks.js';
import { workOrder } from './plan/work-order.js';
import { settledScope, withSettled } from './plan/settled-scope.js';
import { restrictPlan, runScope } from './plan/plan-scope.js';
import { RunRecorder } from './run-record.js';
import { checkAllowedSigners } from './trusted-documents.js';
import { emptyPullReport, type PullOptions, type PullReport } from './pull-options.js';
import { fetchRemoteManifest, forgetManifestValidators, settledDigest } from './manifest-poll.js';
import { carryOut } from './carry-out.js';
import { localState, writeLocalManifest } from './local-manifest.js';
import { copyForNextTier } from './tier/next-tier.js';

export type { PullOptions, PullReport } from './pull-options.js';

export async function pull(config: PullConfig, opts: PullOptions): Promise<PullReport> {
  await checkToplevel(config);
  await checkAllowedSigners(config.remote.allowedSigners);
  const toplevel = config.core.toplevel;
  // before the lock, which is a directory in the state directory too
  await guardReplica(config);
  const release = await acquireToplevelLock(toplevel);
  try {
    // a repository half-built in staging belongs to a run that was killed (we hold the lock): nothing would ever use or remove it
    await rm(stagingDir(toplevel), { recursive: true, force: true });
    // so do temp files of the atomic writes it was making (state, manifests): their writer's pid is gone
    for (const dir of new Set([toplevel, stateDir(toplevel), dirname(config.core.manifest)]))
      await removeStaleTemps(dir);
    const state = await openState(toplevel, { warn: (m) => opts.log.warn(m) });
    const recorder = new RunRecorder(toplevel);
    const onProgress = (repo: string, file: string, p: DownloadProgress): void => {
      recorder.progress(repo, file, p);
      opts.onProgress?.(repo, file, p);
    };
    const mirrors = config.remote.mirrors.length
      ? new MirrorSet(config.bundlemirror.bundles, config.remote.mirrors)
      : undefined;
    const hosts = (): [ReturnType<MirrorSet['report']>, Record<string, string>] =>
      mirrors ? [mirrors.report(), Object.fromEntries(mirrors.servedBy)] : [[], {}];
    try {
      const report = await pullLocked(config, state, { ...opts, onProgress, ...(mirrors ? { mirrors } : {}) });
      await recorder.finish({ report }, ...hosts());
      return report;
    } catch (err) {
      await recorder.finish({ error: err }, ...hosts());
      throw err;
    }
  } finally {
    await release();
  }
}

async function pullLocked(config: PullConfig, state: StateStore, opts: PullOptions): Promise<PullReport> {
  const { log } = opts;
  const toplevel = config.core.toplevel;
  const report = emptyPullReport();

  const partial = !!opts.only || !!opts.partial;
  const inScope = runScope(opts);
  const fetched = await fetchRemoteManifest(config, state, opts, partial);
  const recorded = await state.all();
  const pendingFailures = Object.values(recorded).some((r) => r.lastError);
  // an explicit -p asks for a purge now, which an unchanged manifest must not skip
  const looksFurther = opts.force || opts.noMtimeCheck || opts.purge === true || partial;
  if (fetched.unchanged && !pendingFailures && !looksFurther) {
    report.manifestUnchanged = true;
    report.unchanged = Object.keys(recorded).length;
    return report;
  }
  // with nothing pending, a manifest that edits the settled one is checked where it changed (manifest-edit.ts)
  const edit =
    fetched.settled && !pendingFailures && !partial
      ? parseManifestEdit(fetched.bytes, fetched.settled, config.remote.manifest)
      : null;
  const parsed = edit ?? parseManifest(fetched.bytes, config.remote.manifest);
  const { manifest: remote, problems } = parsed;
  if (edit) {
    report.manifestEdit = { changed: edit.changed.size, removed: edit.removed.length };
    log.debug(`manifest read as an edit: ${edit.changed.size} entries changed, ${edit.removed.length} removed`);
  }
  report.problems.push(...problems);
  for (const p of problems) log.error(`${p.path}: refused manifest entry: ${p.problem}`);

  const purge = opts.purge ?? config.pull.purge;
  const lookAtAll = !!opts.force || !!opts.noMtimeCheck;
  // an edit with nothing removed, and nothing that needs every entry: plan the changed entries alone
  // (not for a run over part of the collection: its plan, books and counts are of that part alone)
  const narrow =
    edit &&
    !inScope &&
    edit.removed.length === 0 &&
    !purge &&
    !config.publish.out &&
    !config.pull.projectslist &&
    !lookAtAll
      ? settledScope(remote, edit.size, recorded, edit.changed)
      : null;
  const local = await localState(config, narrow?.remote ?? remote, narrow?.recorded ?? recorded, {
    purge,
    lookAtAll,
    changed: edit?.changed,
  });
  const planned = planSync({
    remote: narrow?.remote ?? remote,
    local,
    config,
    options: { force: !!opts.force, purge, forcePurge: !!opts.forcePurge },
    changed: edit?.changed,
  });
  const plan = restrictPlan(narrow ? withSettled(planned, narrow.settled) : planned, inScope);
  report.plan = plan;
  report.problems.push(...plan.problems);
  for (const p of plan.problems) log.warn(`${p.path}: ${p.problem}`);
  if (plan.purgeBlocked) log.error(plan.purgeBlocked.message);
  for (const a of plan.actions) if (a.kind !== 'skip') log.debug(`${a.path}: ${a.kind}: ${a.reason}`);

  const results = new Map<string, SyncResult>();
  // index.json files the syncs read, for the published copy ([publish] out)
  const indexes = new Map<string, { bytes: Buffer; signature: Buffer | undefined }>();
  const limit = pLimit(config.pull.pullThreads);
  const hookOpts = { log, timeoutMs: config.bundlemirror.hookTimeoutMs, signal: opts.signal };
  let interrupted: InterruptedError | null | undefined;
  const act = async (action: WorkAction) => {
    try {
      await carryOut(action, config, state, opts, report, results, {
        published: fetched.published,
        onIndex: config.publish.out ? (p, bytes, signature) => indexes.set(p, { bytes, signature }) : undefined,
      });
      const res = results.get(action.path);
      if (res && res.outcome !== 'unchanged' && config.pull.postUpdateHook.length) {
        await runPostUpdateHooks(config.pull.postUpdateHook, await repoDir(toplevel, action.path), hookOpts);
      }
    } catch (err) {
      // an interruption is not this repository's failure: nothing recorded, the next run resumes it
      if (isInterruption(err) || opts.signal?.aborted) {
        interrupted ??= isInterruption(err) ? err : null;
        return;
      }
      const e = forRepo(err, action.path);
      report.failed.push(e);
      log.error(e.describe());
      // best effort: on a full disk the state cannot be written either, and an unrecorded failure is re-verified next run anyway
      if (action.kind !== 'purge') {
        await state
          .recordFailure(action.path, e)
          .catch((err: unknown) =>
            log.warn(`${action.path}: cannot record the failure in the state file (${(err as Error).message})`),
          );
      }
    }
  };
  // a skip is only counted: 9,999 of them must not cost a queued task each
  const work = plan.actions.filter((a): a is WorkAction => a.kind !== 'skip');
  report.unchanged += plan.actions.length - work.length + (plan.settled ?? 0);
  await Promise.all(
    workOrder(work, remote).map((batch) =>
      limit(async () => {
        for (const action of batch) {
          if (interrupted !== undefined || opts.signal?.aborted) return;
          await act(action);
        }
      }),
    ),
  );
  // the books (local manifest, projects.list, hooks, validators) wait for a run that finishes: this one resumes
  if (opts.signal?.aborted) throw opts.signal.reason;
  if (interrupted) throw interrupted;
  for (const r of results.values()) {
    report.bytesDownloaded += r.bytesDownloaded;
    report.bytesResumed += r.bytesResumed;
  }
  report.cloned.sort();
  report.updated.sort();
  if (config.publish.out)
    await copyForNextTier(config, state, opts, report, {
      remote,
      bytes: fetched.bytes,
      published: fetched.published,
      plan,
      partial: partial || !!inScope,
      indexes,
    });

  const failedPaths = new Set(report.failed.map((e) => e.repo));
  const linked = plan.actions.filter((a) => a.kind !== 'purge' && !failedPaths.has(a.path)).map((a) => a.path);
  const links = await syncManifestSymlinks({ toplevel, reserved: reservedPaths(config) }, remote, linked);
  for (const e of links.refused) log.warn(e.describe());
  report.warnings.push(...links.refused);
  await checkOwnPaths(config);
  // the toplevel lock keeps everyone else from writing it meanwhile: localState's read, when it made one, is current
  const previous = async () => local.localManifest ?? (await readManifestIfAny(config.core.manifest)) ?? {};
  const written = await writeLocalManifest(
    config,
    { manifest: remote, bytes: fetched.bytes, refused: problems.length > 0 },
    plan,
    failedPaths,
    inScope,
    previous,
  );
  if (config.pull.projectslist) {
    const inSync = Object.fromEntries(linked.map((p) => [p, { symlinks: remote[p]?.symlinks ?? [] }]));
    if (inScope)
      for (const [p, e] of Object.entries(written)) if (!inScope(p)) inSync[p] = { symlinks: e.symlinks ?? [] };
    await writeProjectsList(config.pull.projectslist, inSync, {
      trimtop: config.pull.projectslistTrimtop,
      symlinks: config.pull.projectslistSymlinks,
    });
  }
  if (report.cloned.length && config.pull.postCloneCompleteHook.length) {
    await runPostCloneCompleteHooks(
      config.pull.postCloneCompleteHook,
      await Promise.all(report.cloned.map((p) => repoDir(toplevel, p))),
      hookOpts,
    );
  }
  const worked = report.cloned.length + report.updated.length + report.purged.length + report.metadata.length > 0;
  if (worked && config.pull.postWorkCompleteHook.length)
    await runPostWorkCompleteHooks(config.pull.postWorkCompleteHook, hookOpts);
  if (plan.forget.length) await state.remove(...plan.forget);
  // a run that left work undone must not be skipped next time as "manifest unchanged"
  const deferredPurge = config.pull.purge && !purge && plan.stale.length > 0;
  const leftOver = report.problems.length > 0 || !!plan.purgeBlocked || deferredPurge;
  // the manifest is now fully acted on (failures are in the state and retried): only now may it count as seen
  if (fetched.validators) {
    // and, with every entry plain and in sync, nothing failed, filtered or left over, settled: the next change may be read as an edit of it
    // (a run over part of the collection, a daemon's refresh beside its schedules, left the rest as it was)
    const settled =
      !inScope &&
      parsed.plain &&
      !leftOver &&
      report.failed.length === 0 &&
      report.warnings.length === 0 &&
      plan.filtered.length === 0 &&
      plan.stale.length === 0;
    await state.setManifestValidators(
      settled ? { ...fetched.validators, settled: settledDigest(fetched.bytes) } : fetched.validators,
    );
  }
  if (!partial && leftOver) await forgetManifestValidators(config, state);
  // partials of repositories outside this run's part belong to a run that may resume them
  if (report.failed.length === 0 && !inScope) await clearPartials(toplevel);
  return report;
}

async function clearPartials(toplevel: string): Promise<void> {
  // verified bundles a killed run never applied are in the cache too; a repository that then got
  // its objects another way (a forkgroup store, git fetch) never asks for them again
  for (const dir of [partialDir(toplevel), bundleCacheDir(toplevel)]) {
    for (const name of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, name), { force: true });
  }
}
