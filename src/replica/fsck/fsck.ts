/**
 * `bundlemirror fsck`: finds replica repositories that are corrupt and
 * rebuilds them from the origin.
 *
 * Checking (fsck-check.ts) is read-only and runs without the pull lock (a
 * pull moves refs only after their objects are in place, so a concurrent
 * check sees a consistent repository). Repairing (fsck-repair.ts) and
 * repacking (fsck-repack.ts) take the lock; fsck never leaves a repository
 * missing. Forkgroup object stores (`[core] objstore`) are checked too, and
 * a corrupt store is rebuilt with all its members at once.
 */
import pLimit from 'p-limit';
import { BundlemirrorError, forRepo, isBundlemirrorError } from '../../errors.js';
import { fingerprint } from '../../git/repo.js';
import type { DownloadProgress } from '../../transfer/download.js';
import { checkToplevel, type PullConfig } from '../config/config.js';
import { acquireToplevelLock } from '../toplevel-lock.js';
import type { Release } from '../../lock/lock.js';
import type { PullLog } from '../log.js';
import { guardReplica } from '../own-paths.js';
import { collectTargets, namedTargets, type Target } from './fsck-targets.js';
import { readKnownRemoteManifest } from '../remote-manifest.js';
import { openState } from '../state.js';
import { onlyLfsProblems } from './fsck-lfs.js';
import { checkTarget } from './fsck-check.js';
import { rebuildGroup, repairLfs } from './fsck-repair.js';
import { repackOne } from './fsck-repack.js';
import { describeError, fsckReport, type FsckReport, type FsckRepoReport } from './fsck-report.js';

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
        const problems = await checkTarget(t, state, opts.signal);
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
      errors.push(describeError(e));
      log.error(`not ${repair ? 'repairing' : 'repacking'}: ${e.message}`);
    }
    if (release) {
      try {
        if (repair) {
          const remote = await readKnownRemoteManifest(config).catch((err: unknown) => {
            errors.push(describeError(forRepo(err, '')));
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
  return fsckReport(toplevel, reports.values(), errors);
}
