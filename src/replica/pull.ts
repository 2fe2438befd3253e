/**
 * One `pull` run: poll the manifest, plan, act, record. The planner decides
 * (pure, see planner.ts); this module only carries the decisions out and
 * keeps the books: state after verification, the local manifest,
 * projects.list, symlinks and hooks, as grok-pull does.
 */
import { readFile, rm, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pLimit from 'p-limit';
import { BundlemirrorError, forRepo, isInterruption, type InterruptedError } from '../errors.js';
import { removeStaleTemps, writeFileAtomic } from '../fs/atomic.js';
import { parseManifest, readManifestIfAny, writeManifestFile, type Manifest } from '../manifest/manifest.js';
import { repoPathProblem } from '../git/refname.js';
import { isBareRepository, scanToplevel } from '../git/discovery.js';
import { readAlternates } from '../git/inspect.js';
import { fetchDocumentFromHosts } from '../transfer/document.js';
import { MirrorSet } from '../transfer/mirrors.js';
import type { DownloadProgress } from '../transfer/download.js';
import type { RetryWait } from '../transfer/retry-policy.js';
import { checkToplevel, type PullConfig } from './config/config.js';
import { notSelected, planSync, type SyncAction, type SyncPlan } from './plan/planner.js';
import { openState, type StateStore } from './state.js';
import type { ManifestValidators } from './state-file.js';
import { acquireToplevelLock } from './toplevel-lock.js';
import { runPostCloneCompleteHooks, runPostUpdateHooks, runPostWorkCompleteHooks } from './hooks.js';
import { writeProjectsList } from './projects-list.js';
import { applyMetadata, wantedMetadata } from './sync/metadata.js';
import { repoDir, stateDir, partialDir, stagingDir, bundleCacheDir } from './paths.js';
import { syncRepo, type SyncContext, type SyncResult } from './sync/sync-repo.js';
import { checkOwnPaths, guardReplica, reservedPaths } from './own-paths.js';
import { syncManifestSymlinks } from './symlinks.js';
import { manifestRedirects } from './remote-manifest.js';
import { remoteManifestCopyPath } from './remote-manifest.js';
import { dropMember } from './sync/objstore.js';
import { workOrder } from './plan/work-order.js';
import { restrictPlan, runScope } from './plan/plan-scope.js';
import { syncContextFor } from './sync/sync-context.js';
import { RunRecorder } from './run-record.js';
import { copyIsCurrent, updatePublishedCopy } from './tier/published-copy.js';
import {
  checkAllowedSigners,
  checkManifestFreshness,
  readAcceptedManifest,
  recordAcceptedManifest,
  verifyFetched,
} from './trusted-documents.js';
import { manifestStamp } from '../manifest/manifest-stamp.js';
import type { PullLog } from './log.js';
import { diskPathOf, manifestPathOf } from '../manifest/tree.js';

export interface PullOptions {
  force?: boolean;
  /** grok-pull -n: fetch the manifest without validators and look at every entry, skipping only verified repositories. */
  noMtimeCheck?: boolean;
  /** false for --no-purge; true for -p/--purge (grok-pull's: purge even where the config does not say so). */
  purge?: boolean;
  forcePurge?: boolean;
  log: PullLog;
  onProgress?: (repo: string, file: string, p: DownloadProgress) => void;
  /** Told when a request waits before trying again; `repo` is null for the manifest. */
  onWait?: (repo: string | null, w: RetryWait) => void;
  /** --retry-for: overrides `[pull] retry_for`. */
  retryForMs?: number;
  /** The hosts of the published tree (`[remote] mirrors`), shared by every request of the run; made by pull(). */
  mirrors?: MirrorSet;
  signal?: AbortSignal;
  /**
   * Pull only these manifest paths (a push notification). Implies `partial`:
   * the notified repositories changed even if the manifest looks unchanged.
   */
  only?: readonly string[];
  /**
   * The part of the collection this run is responsible for (a daemon
   * schedule group): repositories outside it are neither synced nor purged,
   * and keep their entries in the local manifest and projects.list.
   */
  scope?: (path: string) => boolean;
  /**
   * The run does not stand for a whole pass over the manifest: it skips the
   * "manifest unchanged" shortcut, and a manifest it downloads is kept
   * without validators, so the next full run still sees every change.
   */
  partial?: boolean;
}

export interface PullReport {
  manifestUnchanged: boolean;
  cloned: string[];
  updated: string[];
  unchanged: number;
  metadata: string[];
  purged: string[];
  failed: BundlemirrorError[];
  /** Refused without failing a repository (a manifest symlink the replica will not make). */
  warnings: BundlemirrorError[];
  problems: { path: string; problem: string }[];
  bytesDownloaded: number;
  bytesResumed: number;
  plan?: SyncPlan;
}

/** Largest manifest download accepted (compressed); the unpacked limit is in manifest.ts. */
const MAX_MANIFEST_DOWNLOAD = 256 << 20;

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
  const report: PullReport = {
    manifestUnchanged: false,
    cloned: [],
    updated: [],
    unchanged: 0,
    metadata: [],
    purged: [],
    failed: [],
    warnings: [],
    problems: [],
    bytesDownloaded: 0,
    bytesResumed: 0,
  };

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
  const { manifest: remote, problems } = parseManifest(fetched.bytes, config.remote.manifest);
  report.problems.push(...problems);
  for (const p of problems) log.error(`${p.path}: refused manifest entry: ${p.problem}`);

  const purge = opts.purge ?? config.pull.purge;
  const local = await localState(config, remote, recorded, purge);
  const plan = restrictPlan(
    planSync({ remote, local, config, options: { force: !!opts.force, purge, forcePurge: !!opts.forcePurge } }),
    inScope,
  );
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
  const act = async (action: SyncAction) => {
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
      if (action.kind !== 'purge' && action.kind !== 'skip') {
        await state
          .recordFailure(action.path, e)
          .catch((err: unknown) =>
            log.warn(`${action.path}: cannot record the failure in the state file (${(err as Error).message})`),
          );
      }
    }
  };
  await Promise.all(
    workOrder(plan.actions, remote).map((batch) =>
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
  const written = await writeLocalManifest(config, remote, plan, failedPaths, inScope);
  if (config.pull.projectslist) {
    const inSync = Object.fromEntries(
      plan.actions
        .filter((a) => a.kind !== 'purge' && !failedPaths.has(a.path))
        .map((a) => [a.path, { symlinks: remote[a.path]?.symlinks ?? [] }]),
    );
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
  // the manifest is now fully acted on (failures are in the state and retried): only now may it count as seen
  if (fetched.validators) await state.setManifestValidators(fetched.validators);
  // a run that left work undone must not be skipped next time as "manifest unchanged"
  const deferredPurge = config.pull.purge && !purge && plan.stale.length > 0;
  if (!partial && (report.problems.length || plan.purgeBlocked || deferredPurge))
    await forgetManifestValidators(config, state);
  // partials of repositories outside this run's part belong to a run that may resume them
  if (report.failed.length === 0 && !inScope) await clearPartials(toplevel);
  return report;
}

/** `[publish] out`: brings the copy of the origin's files this replica serves up to date (src/replica/tier/). */
async function copyForNextTier(
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

async function carryOut(
  action: SyncAction,
  config: PullConfig,
  state: StateStore,
  opts: PullOptions,
  report: PullReport,
  results: Map<string, SyncResult>,
  run: { published: string | null; onIndex: SyncContext['onIndex'] },
): Promise<void> {
  const toplevel = config.core.toplevel;
  switch (action.kind) {
    case 'skip':
      report.unchanged += 1;
      return;
    case 'purge': {
      const dir = await repoDir(toplevel, action.path);
      opts.log.info(`${action.path}: purging (${action.reason})`);
      const store = await storeOf(dir, config.core.objstore);
      await rm(dir, { recursive: true, force: true });
      if (store && (await dropMember(store, action.path)))
        opts.log.info(`${action.path}: was the last member of ${store}; store removed`);
      await state.remove(action.path);
      report.purged.push(action.path);
      return;
    }
    case 'metadata': {
      const dir = await repoDir(toplevel, action.path);
      const changed = await applyMetadata(
        dir,
        wantedMetadata(action.entry, config.pull.defaultOwner || null),
        action.path,
      );
      const rec = await state.get(action.path);
      await state.recordSuccess(action.path, {
        fingerprint: rec?.fingerprint ?? action.entry.fingerprint ?? null,
        head: action.entry.head ?? null,
        description: action.entry.description ?? null,
        owner: action.entry.owner ?? null,
        symlinks: action.entry.symlinks ?? [],
      });
      if (changed.length || action.fields.includes('symlinks')) report.metadata.push(action.path);
      else report.unchanged += 1;
      return;
    }
    case 'clone':
    case 'update': {
      const res = await syncRepo(action.path, action.entry, {
        ...syncContextFor(config, { ...opts, manifestPublished: run.published }),
        onIndex: run.onIndex,
      });
      results.set(action.path, res);
      await state.recordSuccess(action.path, {
        fingerprint: res.fingerprint,
        head: action.entry.head ?? null,
        description: action.entry.description ?? null,
        owner: action.entry.owner ?? null,
        symlinks: action.entry.symlinks ?? [],
        appliedBundles: res.bundles,
      });
      if (res.outcome === 'cloned') report.cloned.push(action.path);
      else if (res.outcome === 'updated') report.updated.push(action.path);
      else if (res.metadataChanged.length) report.metadata.push(action.path);
      else report.unchanged += 1;
      const how =
        res.via === 'none'
          ? ''
          : ` via ${res.via}${res.bytesDownloaded ? ` (${res.bytesDownloaded} bytes${res.bytesResumed ? `, ${res.bytesResumed} resumed` : ''})` : ''}`;
      const lfs = res.lfs
        ? `, ${res.lfs.listed} LFS object(s)${res.lfs.downloaded ? ` (${res.lfs.downloaded} downloaded)` : ''}`
        : '';
      if (res.outcome !== 'unchanged')
        opts.log.info(
          `${action.path}: ${res.outcome}${how}, fingerprint ${res.fingerprint.slice(0, 12)} verified${lfs}`,
        );
      else if (res.lfs?.downloaded)
        opts.log.info(`${action.path}: unchanged, ${res.lfs.downloaded} missing LFS object(s) downloaded`);
      return;
    }
  }
}

interface FetchedManifest {
  unchanged: boolean;
  bytes: Buffer;
  validators?: ManifestValidators;
  /** The publish time a signed manifest carries; null when unsigned or not checked. */
  published: string | null;
}

/**
 * With [remote] allowed_signers, a changed manifest must be signed by a
 * listed key and not older than the newest accepted; nothing is stored
 * before it passes, so a refused manifest leaves the replica as it was.
 */
async function trustManifest(
  config: PullConfig,
  url: string,
  body: Buffer,
  opts: PullOptions,
): Promise<{ bytes: Buffer; refetched: boolean; published: string | null }> {
  const signers = config.remote.allowedSigners;
  if (!signers) return { bytes: body, refetched: false, published: null };
  const doc = await verifyFetched(url, body, {
    allowedSigners: signers,
    what: `manifest ${url}`,
    maxBytes: MAX_MANIFEST_DOWNLOAD,
    signal: opts.signal,
    redirects: manifestRedirects(config),
  });
  const accepted = checkManifestFreshness(
    doc.body,
    url,
    doc.principal,
    await readAcceptedManifest(config.core.toplevel),
    new Date(),
  );
  await recordAcceptedManifest(config.core.toplevel, accepted);
  opts.log.debug(`manifest ${url}: signed by ${doc.principal}, published ${accepted.published}`);
  return { bytes: doc.body, refetched: doc.refetched, published: accepted.published };
}

async function fetchRemoteManifest(
  config: PullConfig,
  state: StateStore,
  opts: PullOptions,
  partial: boolean,
): Promise<FetchedManifest> {
  const url = config.remote.manifest;
  const copy = remoteManifestCopyPath(config.core.toplevel);
  if (url.startsWith('file:')) {
    const bytes = await readFile(new URL(url)).catch((err: Error) => {
      throw new BundlemirrorError('E_MANIFEST', `cannot read manifest ${url}: ${err.message}`, {
        hint: 'check [remote] manifest',
      });
    });
    const trusted = await trustManifest(config, url, bytes, opts);
    return { unchanged: false, bytes: trusted.bytes, published: trusted.published };
  }
  const prior = await state.manifestValidators(url);
  const cached = await readFile(copy).catch(() => null);
  // validators are only useful while we still hold the bytes they describe, and grok-pull refetches after a config change
  const usable = cached && prior && prior.configMtimeMs === config.mtimeMs && !opts.noMtimeCheck;
  // with [remote] mirrors, the manifest comes from the primary when it answers, else from a mirror
  const doc = await fetchDocumentFromHosts(url, opts.mirrors, {
    etag: usable ? (prior.etag ?? undefined) : undefined,
    lastModified: usable ? (prior.lastModified ?? undefined) : undefined,
    maxBytes: MAX_MANIFEST_DOWNLOAD,
    redirects: manifestRedirects(config),
    signal: opts.signal,
    retryForMs: opts.retryForMs ?? config.pull.retryForMs,
    onWait: opts.onWait ? (w) => opts.onWait!(null, w) : undefined,
  }).catch((err: unknown) => {
    if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND') {
      throw new BundlemirrorError('E_NOT_FOUND', `no manifest at ${url} (404)`, {
        hint: `check [remote] manifest in ${config.file}: the URL of the origin's manifest.js.gz`,
        cause: err,
      });
    }
    throw err;
  });
  if (doc.status === 'unchanged') {
    opts.log.debug(`manifest ${url} unchanged (304)`);
    // the copy was verified when it was saved
    return { unchanged: true, bytes: cached!, published: config.remote.allowedSigners ? manifestStamp(cached!) : null };
  }
  const trusted = await trustManifest(config, url, doc.body, opts);
  await writeFileAtomic(copy, trusted.bytes);
  // a partial run keeps the bytes (status reads them) but records no validators: the next full run must not answer "unchanged" for work this one did not do
  // (nor does a manifest fetched again after a signature mismatch: the validators describe the first bytes)
  if (partial || trusted.refetched) {
    await forgetManifestValidators(config, state);
    return { unchanged: false, bytes: trusted.bytes, published: trusted.published };
  }
  // The new validators are recorded only when this run ends (pullLocked): a run killed half-way
  // (kill -9, power loss) must not make the next one answer "manifest unchanged" for work it never did.
  await forgetManifestValidators(config, state);
  return {
    unchanged: false,
    bytes: trusted.bytes,
    published: trusted.published,
    validators: {
      url,
      etag: doc.etag ?? null,
      lastModified: doc.lastModified ?? null,
      fetchedAt: new Date().toISOString(),
      configMtimeMs: config.mtimeMs,
    },
  };
}

/** The forkgroup store a repository borrows objects from, if it lives under `objstore`. */
async function storeOf(dir: string, objstore: string): Promise<string | null> {
  const stores = (await readAlternates(dir)).filter((d) => dirname(d) === objstore);
  return stores[0] ?? null;
}

async function forgetManifestValidators(config: PullConfig, state: StateStore): Promise<void> {
  const prior = await state.manifestValidators(config.remote.manifest);
  if (prior) await state.setManifestValidators({ ...prior, etag: null, lastModified: null });
}

/** What is on disk, without walking the whole toplevel unless purge needs it. */
async function localState(config: PullConfig, remote: Manifest, recorded: Record<string, unknown>, purge: boolean) {
  const toplevel = config.core.toplevel;
  const onDisk = new Set<string>();
  const alternates: Record<string, string[]> = {};
  if (purge) {
    // forkgroup stores live under the toplevel by default (grokmirror's layout) and are not mirrors
    const stores = manifestPathOf(toplevel, config.core.objstore);
    const found = await scanToplevel(toplevel, (p) => p === stores || p.startsWith(stores + '/'));
    const byDir = new Map(found.map((f) => [f.dir, f.path]));
    for (const f of found) {
      onDisk.add(f.path);
      const alt = (await readAlternates(f.dir)).map((d) => byDir.get(d)).filter((p): p is string => !!p);
      if (alt.length) alternates[f.path] = alt;
    }
  } else {
    const paths = new Set([...Object.keys(remote), ...Object.keys(recorded)]);
    await Promise.all(
      [...paths].map(async (p) => {
        if (repoPathProblem(p)) return;
        if (await isBareRepository(diskPathOf(toplevel, p))) onDisk.add(p);
      }),
    );
  }
  const localManifest = (await readManifestIfAny(config.core.manifest)) ?? undefined;
  return { repos: recorded as never, onDisk, alternates, localManifest };
}

/** The replica's own manifest (grokmirror format): what this replica holds, verified. */
async function writeLocalManifest(
  config: PullConfig,
  remote: Manifest,
  plan: SyncPlan,
  failed: Set<string | undefined>,
  inScope: ((path: string) => boolean) | null,
): Promise<Manifest> {
  const previous = (await readManifestIfAny(config.core.manifest)) ?? {};
  const next: Manifest = {};
  if (inScope) for (const [p, e] of Object.entries(previous)) if (!inScope(p)) next[p] = e;
  for (const a of plan.actions) {
    if (a.kind === 'purge') continue;
    if (failed.has(a.path)) {
      if (previous[a.path]) next[a.path] = previous[a.path]!;
      continue;
    }
    if (remote[a.path]) next[a.path] = remote[a.path]!;
  }
  await writeManifestFile(config.core.manifest, next);
  return next;
}

async function clearPartials(toplevel: string): Promise<void> {
  // verified bundles a killed run never applied are in the cache too; a repository that then got
  // its objects another way (a forkgroup store, git fetch) never asks for them again
  for (const dir of [partialDir(toplevel), bundleCacheDir(toplevel)]) {
    for (const name of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, name), { force: true });
  }
}
