/**
 * `bundlemirror fsck`: finds replica repositories that are corrupt and
 * rebuilds them from the origin.
 *
 * Checking is read-only and runs without the pull lock (a pull moves refs
 * only after their objects are in place, so a concurrent check sees a
 * consistent repository). Repairing and repacking take the lock, check
 * the repository again under it, and re-bootstrap it exactly as pull
 * clones a new repository: the corrupt copy is moved aside to
 * `.bundlemirror/quarantine/`, `syncRepo` builds a fresh one in staging
 * and moves it into place, `git fsck` must pass and the fingerprint must be
 * the manifest's; only then is the quarantined copy deleted. If anything
 * fails, the new copy is removed and the old one is put back, so fsck
 * never leaves a repository missing.
 *
 * Forkgroup object stores (`[core] objstore`) are checked too. A corrupt
 * store is rebuilt with all its members at once (they read their objects
 * from it, so none of them can be repaired alone): store and members go
 * to quarantine together and come back together if the rebuild fails.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { BundlemirrorError, forRepo, isBundlemirrorError } from '../../errors.js';
import { configSet, fingerprint } from '../../git/repo.js';
import { configGetAll, fsckFull, repackAll } from '../../git/maintenance.js';
import { isBareRepository } from '../../git/discovery.js';
import type { Manifest, ManifestEntry } from '../../manifest/manifest.js';
import { readAlternates } from '../../git/inspect.js';
import type { DownloadProgress } from '../../transfer/download.js';
import { checkToplevel, type PullConfig } from '../config/config.js';
import { acquireToplevelLock } from '../toplevel-lock.js';
import type { Release } from '../../lock/lock.js';
import type { PullLog } from '../log.js';
import { stateDir } from '../paths.js';
import { guardReplica } from '../own-paths.js';
import { collectTargets, namedTargets, type Target } from './fsck-targets.js';
import { readKnownRemoteManifest } from '../remote-manifest.js';
import { openState, type StateStore } from '../state.js';
import { syncRepo, type SyncResult } from '../sync/sync-repo.js';
import { recordSynced, syncContextFor } from '../sync/sync-context.js';
import { dropCorruptLfsObjects, lfsProblems, onlyLfsProblems } from './fsck-lfs.js';
import { diskPathOf } from '../../manifest/tree.js';

export const FSCK_REPORT_VERSION = 1;

export interface FsckOptions {
  /** Only these repositories: manifest paths (`/pub/a.git`) or directories under the toplevel. Default: every repository on disk. */
  repos?: string[];
  /** Re-bootstrap corrupt repositories (default true); false only reports. */
  repair?: boolean;
  /** Repack every healthy repository afterwards: `git repack -a -d -b` (`-l` and no bitmap for forkgroup members, `--delta-islands` for stores). */
  repack?: boolean;
  /** How long to wait for a running pull before repairing or repacking (default 300 s). */
  lockWaitMs?: number;
  log: PullLog;
  onProgress?: (repo: string, file: string, p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface FsckRepoReport {
  /** Manifest path; for a forkgroup object store, its directory. */
  path: string;
  /** `objstore`: a forkgroup store whose objects its members borrow (not in the manifest). */
  kind: 'repository' | 'objstore';
  /** `ok`: healthy; `repaired`: was corrupt, rebuilt and verified; `broken`: still corrupt (see `error`). */
  outcome: 'ok' | 'repaired' | 'broken';
  /** What the check found (empty when healthy). */
  problems: string[];
  /** Fingerprint on disk after fsck; null if unreadable, and for stores. */
  fingerprint: string | null;
  /** How the repair got its objects. */
  repairedVia?: 'bundles' | 'fetch' | 'bundles+fetch' | 'none';
  repacked: boolean;
  /** Why it is still broken, or why the repack failed. */
  error?: { code: string; message: string; hint?: string };
}

export interface FsckReport {
  version: typeof FSCK_REPORT_VERSION;
  toplevel: string;
  counts: { checked: number; ok: number; repaired: number; broken: number; repacked: number };
  /** Sorted by path. */
  repos: FsckRepoReport[];
  /** Problems of the run itself (the lock could not be taken, ...). */
  errors: { code: string; message: string; hint?: string }[];
}

/** The refs a store keeps per member live under refs/virtual/<member id>/ (objstore.ts): one delta island each. */
const STORE_ISLAND = 'refs/virtual/([0-9a-f]+)/';

export async function runFsck(config: PullConfig, opts: FsckOptions): Promise<FsckReport> {
  await checkToplevel(config);
  await guardReplica(config);
  const toplevel = config.core.toplevel;
  const { log } = opts;
  const state = await openState(toplevel, { warn: (m) => log.warn(m) });
  const everything = await collectTargets(config);
  const targets = opts.repos?.length ? await namedTargets(toplevel, opts.repos, everything) : everything;
  const limit = pLimit(config.pull.pullThreads);

  const reports = new Map<string, FsckRepoReport>();
  const errors: FsckReport['errors'] = [];
  await Promise.all(
    targets.map((t) =>
      limit(async () => {
        const problems = await check(t, state, opts.signal);
        reports.set(t.dir, {
          path: t.path,
          kind: t.kind,
          outcome: problems.length ? 'broken' : 'ok',
          problems,
          fingerprint: null,
          repacked: false,
        });
        if (problems.length)
          log.warn(`${t.path}: ${problems[0]}${problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''}`);
        else log.debug(`${t.path}: ok`);
      }),
    ),
  );
  const reportOf = (t: Target) => reports.get(t.dir)!;

  const broken = targets.filter((t) => reportOf(t).outcome === 'broken');
  const brokenStores = broken.filter((t) => t.kind === 'objstore');
  // a member of a corrupt store is rebuilt with its store, never alone
  const inBrokenStore = (t: Target) => t.store !== null && brokenStores.some((s) => s.dir === t.store);
  const brokenRepos = broken.filter(
    (t) => t.kind === 'repository' && !inBrokenStore(t) && !onlyLfsProblems(reportOf(t).problems),
  );
  // a healthy git repository with corrupt LFS objects needs those objects again, not a new clone
  const brokenLfs = broken.filter(
    (t) => t.kind === 'repository' && !inBrokenStore(t) && onlyLfsProblems(reportOf(t).problems),
  );
  const repair = opts.repair !== false && broken.length > 0;
  if (repair || opts.repack) {
    let release: Release | null = null;
    try {
      release = await acquireToplevelLock(toplevel, {
        wait: opts.lockWaitMs ?? 300_000,
        signal: opts.signal,
        onWait: (holder) =>
          log.info(`waiting for the running pull (${holder}) to finish before ${repair ? 'repairing' : 'repacking'}`),
      });
    } catch (err) {
      const e = isBundlemirrorError(err)
        ? err
        : new BundlemirrorError('E_LOCKED', (err as Error).message, { cause: err });
      errors.push(describe(e));
      log.error(`not ${repair ? 'repairing' : 'repacking'}: ${e.message}`);
    }
    if (release) {
      try {
        if (repair) {
          const remote = await readKnownRemoteManifest(config).catch((err: unknown) => {
            errors.push(describe(forRepo(err, '')));
            return null;
          });
          const rebuild = (store: Target | null, members: Target[]) =>
            rebuildGroup(store, members, { reports, remote: remote?.manifest ?? null, config, state, opts });
          for (const store of brokenStores) {
            const members = everything.filter((t) => t.store === store.dir);
            // members outside this run's selection get a report too: they are rebuilt as well
            for (const m of members)
              if (!reports.has(m.dir))
                reports.set(m.dir, {
                  path: m.path,
                  kind: m.kind,
                  outcome: 'broken',
                  problems: [`its object store ${store.path} is corrupt`],
                  fingerprint: null,
                  repacked: false,
                });
            await rebuild(store, members);
          }
          await Promise.all(brokenRepos.map((t) => limit(() => rebuild(null, [t]))));
          await Promise.all(
            brokenLfs.map((t) =>
              limit(() => repairLfs(t, { reports, remote: remote?.manifest ?? null, config, state, opts })),
            ),
          );
        }
        if (opts.repack) {
          await Promise.all(
            targets
              .filter((t) => reportOf(t).outcome !== 'broken')
              .map((t) => limit(() => repackOne(t, reportOf(t), opts))),
          );
        }
      } finally {
        await release();
      }
    }
  }

  await Promise.all(
    [...reports.entries()].map(([dir, r]) =>
      limit(async () => {
        if (r.kind === 'repository')
          r.fingerprint = await fingerprint(dir, r.path).then(
            (f) => f.fingerprint,
            () => null,
          );
      }),
    ),
  );
  const repos = [...reports.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const count = (o: FsckRepoReport['outcome']) => repos.filter((r) => r.outcome === o).length;
  return {
    version: FSCK_REPORT_VERSION,
    toplevel,
    counts: {
      checked: repos.length,
      ok: count('ok'),
      repaired: count('repaired'),
      broken: count('broken'),
      repacked: repos.filter((r) => r.repacked).length,
    },
    repos,
    errors,
  };
}

/** True when the run leaves nothing broken and every requested repack succeeded. */
export function fsckSucceeded(report: FsckReport): boolean {
  return report.errors.length === 0 && report.repos.every((r) => r.outcome !== 'broken' && r.error === undefined);
}

/** What is wrong with one repository: git fsck findings, and refs that differ from what pull last verified. */
async function check(t: Target, state: StateStore, signal?: AbortSignal): Promise<string[]> {
  const problems: string[] = [];
  try {
    const result = await fsckFull(t.dir, t.path, { signal });
    if (!result.ok) problems.push(...result.problems.map((p) => `git fsck: ${p}`));
  } catch (err) {
    problems.push(`git fsck could not run: ${(err as Error).message}`);
  }
  if (t.kind === 'objstore') return problems;
  problems.push(...(await lfsProblems(t.dir)));
  const rec = await state.get(t.path);
  // a failed pull may legitimately have left refs ahead of the recorded fingerprint
  if (rec?.fingerprint && !rec.lastError) {
    try {
      const fp = (await fingerprint(t.dir, t.path)).fingerprint;
      if (fp !== rec.fingerprint)
        problems.push(
          `refs changed behind bundlemirror's back: fingerprint ${fp.slice(0, 12)}, last verified ${rec.fingerprint.slice(0, 12)}`,
        );
    } catch (err) {
      problems.push(`cannot read refs: ${(err as Error).message}`);
    }
  }
  return problems;
}

interface RebuildContext {
  reports: Map<string, FsckRepoReport>;
  remote: Manifest | null;
  config: PullConfig;
  state: StateStore;
  opts: FsckOptions;
}

/**
 * Re-bootstraps `members` (and `store`, when it is the store that is
 * corrupt: every member is then rebuilt, the first one creating a new
 * store). All or nothing: on any failure the new copies go and the old
 * ones come back.
 */
async function rebuildGroup(store: Target | null, members: Target[], ctx: RebuildContext): Promise<void> {
  const { config, state, opts, reports } = ctx;
  const { log } = opts;
  const all = store ? [store, ...members] : members;
  const head = store ?? members[0]!;
  const fail = (e: BundlemirrorError) => {
    for (const t of all) reports.get(t.dir)!.error = describe(e);
    log.error(`${head.path}: not repaired: ${e.message}`);
  };

  // a pull may have changed things between the check and the lock
  const again = await check(head, state, opts.signal);
  if (again.length === 0) {
    if (!store) reports.get(head.dir)!.outcome = 'ok';
    else for (const t of all) if ((await check(t, state, opts.signal)).length === 0) reports.get(t.dir)!.outcome = 'ok';
    log.info(`${head.path}: healthy when checked again under the lock`);
    return;
  }
  reports.get(head.dir)!.problems = again;
  const entries = new Map<string, ManifestEntry>();
  for (const m of members) {
    const entry = ctx.remote?.[m.path];
    if (!entry) {
      return fail(
        new BundlemirrorError(
          'E_NOT_FOUND',
          `cannot re-bootstrap ${m.path}: it is not in the remote manifest the last pull saved`,
          {
            repo: head.path,
            hint: 'run pull first; if the origin dropped it, pull purges it (purge = yes)',
          },
        ),
      );
    }
    entries.set(m.path, entry);
  }
  if (store && members.length === 0) {
    return fail(
      new BundlemirrorError('E_NOT_FOUND', 'a corrupt object store that no repository uses', {
        repo: store.path,
        hint: `nothing needs it: remove ${store.dir}`,
      }),
    );
  }

  const aside = join(
    stateDir(config.core.toplevel),
    'quarantine',
    `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`,
  );
  const moved: { from: string; to: string }[] = [];
  const putBack = async (): Promise<string | null> => {
    try {
      for (const m of [...moved].reverse()) {
        await rm(m.from, { recursive: true, force: true });
        await mkdir(dirname(m.from), { recursive: true });
        await rename(m.to, m.from);
      }
      await rm(aside, { recursive: true, force: true });
      return null;
    } catch (err) {
      return `the corrupt copies could not all be put back (${(err as Error).message}); they are kept in ${aside}`;
    }
  };
  try {
    for (const t of all) {
      const to = t.kind === 'objstore' ? join(aside, 'objstore', basename(t.dir)) : diskPathOf(aside, t.path);
      await mkdir(dirname(to), { recursive: true });
      await rename(t.dir, to);
      moved.push({ from: t.dir, to });
    }
  } catch (err) {
    const restore = await putBack();
    return fail(
      forRepo(
        new BundlemirrorError(
          'E_DISK',
          `cannot move the corrupt copy aside: ${(err as Error).message}${restore ? `; ${restore}` : ''}`,
          { cause: err },
        ),
        head.path,
      ),
    );
  }
  log.info(
    `${head.path}: corrupt; moved aside to ${aside}, cloning ${store ? `its ${members.length} member(s)` : 'it'} again`,
  );

  try {
    const results = new Map<string, SyncResult | null>();
    // one after the other: the first member of a store creates it, the next ones share it
    for (const m of members) results.set(m.path, await syncOne(m, entries.get(m.path)!, ctx));
    for (const t of all) {
      const verify = await fsckFull(t.dir, t.path, { signal: opts.signal });
      if (!verify.ok) {
        throw new BundlemirrorError(
          'E_GIT',
          `the rebuilt copy of ${t.path} fails git fsck too: ${verify.problems.slice(0, 2).join('; ')}`,
          {
            repo: head.path,
            hint: 'the origin may be corrupt itself; check it',
          },
        );
      }
    }
    for (const m of members) {
      const res = results.get(m.path);
      if (res) {
        await recordSynced(state, m.path, entries.get(m.path)!, res);
        reports.get(m.dir)!.repairedVia = res.via;
      }
    }
    for (const t of all) reports.get(t.dir)!.outcome = 'repaired';
    await rm(aside, { recursive: true, force: true });
    log.info(
      `${head.path}: repaired; ${members.map((m) => `${m.path} fingerprint ${results.get(m.path)?.fingerprint.slice(0, 12) ?? '(see pull)'}`).join(', ')} verified`,
    );
  } catch (err) {
    const e = forRepo(err, head.path);
    const restore = await putBack();
    fail(
      restore
        ? new BundlemirrorError(e.code, `${e.message}; and ${restore}`, {
            repo: head.path,
            hint: 'move them back by hand, or run pull to clone them again',
          })
        : new BundlemirrorError(e.code, e.message, {
            repo: head.path,
            hint: `the corrupt copy is back in place; ${e.hint ?? 'run fsck again once the origin is reachable'}`,
          }),
    );
  }
}

/** `syncRepo` as pull runs it; a copy that is whole but newer than the manifest (the origin moved on) is kept and left for pull to verify. */
async function syncOne(m: Target, entry: ManifestEntry, ctx: RebuildContext): Promise<SyncResult | null> {
  try {
    const res = await syncRepo(m.path, entry, syncContextFor(ctx.config, ctx.opts));
    if (entry.fingerprint && res.fingerprint !== entry.fingerprint) {
      ctx.opts.log.warn(
        `${m.path}: rebuilt at the index's fingerprint ${res.fingerprint.slice(0, 12)}, the manifest has ${entry.fingerprint.slice(0, 12)}`,
      );
    }
    return res;
  } catch (err) {
    if (
      isBundlemirrorError(err) &&
      err.code === 'E_FINGERPRINT' &&
      (await isBareRepository(m.dir)) &&
      (await fsckFull(m.dir, m.path)).ok
    ) {
      await ctx.state.recordFailure(m.path, err);
      ctx.reports.get(m.dir)!.problems.push(`rebuilt, but ${err.message}`);
      return null;
    }
    throw err;
  }
}

async function repackOne(t: Target, report: FsckRepoReport, opts: FsckOptions): Promise<void> {
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
    report.error = describe(e);
    opts.log.error(`${t.path}: repack failed: ${e.message}`);
  }
}

/** Removes a repository's corrupt LFS objects and downloads them again through the ordinary sync. */
async function repairLfs(t: Target, ctx: RebuildContext): Promise<void> {
  const report = ctx.reports.get(t.dir)!;
  const entry = ctx.remote?.[t.path];
  if (!entry) {
    report.error = describe(
      new BundlemirrorError(
        'E_NOT_FOUND',
        `cannot download ${t.path}'s LFS objects again: it is not in the remote manifest the last pull saved`,
        { repo: t.path, hint: 'run pull first' },
      ),
    );
    return;
  }
  try {
    const dropped = await dropCorruptLfsObjects(t.dir);
    const res = await syncRepo(
      t.path,
      entry,
      syncContextFor(ctx.config, { log: ctx.opts.log, onProgress: ctx.opts.onProgress, signal: ctx.opts.signal }),
    );
    const left = await lfsProblems(t.dir);
    if (left.length) throw new BundlemirrorError('E_BUNDLE_VERIFY', left[0]!, { repo: t.path });
    await recordSynced(ctx.state, t.path, entry, res);
    report.outcome = 'repaired';
    report.repairedVia = 'bundles';
    ctx.opts.log.info(`${t.path}: ${dropped} corrupt LFS object(s) downloaded again and verified`);
  } catch (err) {
    const e = forRepo(err, t.path);
    report.error = describe(e);
    ctx.opts.log.error(`${t.path}: LFS objects not repaired: ${e.message}`);
  }
}

function describe(e: BundlemirrorError): NonNullable<FsckRepoReport['error']> {
  return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
}
