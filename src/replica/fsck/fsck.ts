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
 *
 * `--due` checks only the repositories whose turn has come (`[fsck]
 * frequency`, spread over the period by plan/fsck-schedule.ts); every run
 * records what it checked in fsck-record.ts, and hands what it found to
 * `[fsck] report_hook`.
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
import { checkTarget, wantsReclone, type CheckOptions } from './fsck-check.js';
import { rebuildGroup, repairLfs } from './fsck-repair.js';
import { isFullRepack, repackOne } from './fsck-repack.js';
import { describeError, fsckReport, type FsckReport, type FsckRepoReport } from './fsck-report.js';
import { readFsckRecord } from './fsck-record.js';
import { recordRun, selectDue } from './fsck-due.js';
import { runReportHooks } from './fsck-report-hook.js';

export interface FsckOptions {
  /** Only these repositories: manifest paths (`/pub/a.git`) or directories under the toplevel. Default: every repository on disk. */
  repos?: string[];
  /** Only those whose scheduled check has come (`[fsck] frequency`); the others wait for a later run. */
  due?: boolean;
  /** Re-bootstrap corrupt repositories (default true); false only reports. */
  repair?: boolean;
  /** Repack every healthy repository checked: `git repack -a -d -b` (`-l` and no bitmap for forkgroup members, `--delta-islands` for stores). Default: `[fsck] repack`. */
  repack?: boolean;
  /** `git fsck --connectivity-only`. Default: `[fsck] connectivity_only`. */
  connectivityOnly?: boolean;
  /** How long to wait for a running pull before repairing or repacking (default 300 s). */
  lockWaitMs?: number;
  /** The clock (ms since the epoch), for the schedule. */
  now?: () => number;
  log: PullLog;
  onProgress?: (repo: string, file: string, p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export async function runFsck(config: PullConfig, opts: FsckOptions): Promise<FsckReport> {
  await checkToplevel(config);
  await guardReplica(config);
  const toplevel = config.core.toplevel;
  const { log } = opts;
  const fsckConfig = config.fsck;
  const now = (opts.now ?? Date.now)();
  const warn = (m: string) => log.warn(m);
  const state = await openState(toplevel, { warn });
  const everything = await collectTargets(config);
  const selected = opts.repos?.length ? await namedTargets(toplevel, opts.repos, everything) : everything;
  const record = await readFsckRecord(toplevel, warn);
  const schedule = selectDue(selected, record, { now, frequencyDays: fsckConfig.frequencyDays });
  const targets = opts.due ? schedule.due : selected;
  if (opts.due)
    log.info(
      `${targets.length} due for a check, ${selected.length - targets.length} not yet (every ${fsckConfig.frequencyDays} days)`,
    );
  const limit = pLimit(config.pull.pullThreads);
  const checkOpts: CheckOptions = {
    signal: opts.signal,
    connectivityOnly: opts.connectivityOnly ?? fsckConfig.connectivityOnly,
    ignore: fsckConfig.ignoreErrors,
  };
  const repack = opts.repack ?? fsckConfig.repack;

  const reports = new Map<string, FsckRepoReport>();
  const errors: FsckReport['errors'] = [];
  const writeRecord = (checked: FsckRepoReport[]) =>
    recordRun(toplevel, {
      now,
      frequencyDays: fsckConfig.frequencyDays,
      checked,
      firstSeen: schedule.firstSeen,
      // a run over everything also forgets repositories that are gone
      forget: opts.repos?.length ? [] : Object.keys(record).filter((p) => !everything.some((t) => t.path === p)),
      warn,
    }).catch((err: unknown) => {
      errors.push(describeError(forRepo(err, '')));
    });
  // an interrupted run keeps what it verified healthy, so the next --due does not check it again
  const interrupted = async (): Promise<never> => {
    await writeRecord([...reports.values()].filter((r) => r.outcome === 'ok' && r.error === undefined));
    throw opts.signal!.reason;
  };
  const checking = Promise.all(
    targets.map((t) =>
      limit(async () => {
        const problems = await checkTarget(t, state, checkOpts);
        reports.set(t.dir, {
          path: t.path,
          kind: t.kind,
          outcome: problems.length ? 'broken' : 'ok',
          problems,
          fingerprint: null,
          repacked: false,
        });
        // one line per problem, so a log watcher sees each
        for (const p of problems) log.warn(`${t.path}: ${p}`);
        if (problems.length === 0) log.debug(`${t.path}: ok`);
      }),
    ),
  );
  await checking.catch(async (err: unknown) => {
    if (opts.signal?.aborted) await interrupted();
    throw err;
  });
  const reportOf = (t: Target) => reports.get(t.dir)!;

  const broken = targets.filter((t) => reportOf(t).outcome === 'broken');
  const recloned = (t: Target) => wantsReclone(reportOf(t).problems, fsckConfig.recloneOnErrors);
  const brokenStores = broken.filter((t) => t.kind === 'objstore' && recloned(t));
  // a member of a corrupt store is rebuilt with its store, never alone
  const inBrokenStore = (t: Target) => t.store !== null && brokenStores.some((s) => s.dir === t.store);
  const brokenRepos = broken.filter(
    (t) => t.kind === 'repository' && !inBrokenStore(t) && !onlyLfsProblems(reportOf(t).problems) && recloned(t),
  );
  // a healthy git repository with corrupt LFS objects needs those objects again, not a new clone
  const brokenLfs = broken.filter(
    (t) => t.kind === 'repository' && !inBrokenStore(t) && onlyLfsProblems(reportOf(t).problems),
  );
  const repair = opts.repair !== false && brokenStores.length + brokenRepos.length + brokenLfs.length > 0;
  if (repair || repack) {
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
          const ctx = { reports, remote: remote?.manifest ?? null, config, state, opts, check: checkOpts };
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
            await rebuildGroup(store, members, ctx);
          }
          await Promise.all(brokenRepos.map((t) => limit(() => rebuildGroup(null, [t], ctx))));
          await Promise.all(brokenLfs.map((t) => limit(() => repairLfs(t, ctx))));
        }
        if (repack) {
          const choice = (t: Target) => ({
            full: isFullRepack(record[t.path]?.repacksSinceFull ?? 0, fsckConfig.fullRepackEvery),
            extraFlags: fsckConfig.extraRepackFlags,
            extraFlagsFull: fsckConfig.extraRepackFlagsFull,
            commitGraph: fsckConfig.commitgraph,
          });
          await Promise.all(
            targets
              .filter((t) => reportOf(t).outcome !== 'broken')
              .map((t) => limit(() => repackOne(t, reportOf(t), choice(t), opts))),
          );
        }
      } finally {
        await release();
      }
    }
  }
  if (opts.signal?.aborted) await interrupted();
  for (const r of reports.values()) {
    if (r.outcome !== 'broken' || r.error) continue;
    r.error = describeError(
      new BundlemirrorError('E_CORRUPT', `${r.path}: ${r.problems[0] ?? 'corrupt'}`, {
        repo: r.path,
        hint:
          opts.repair === false
            ? 'run fsck without --no-repair to clone it again from the origin'
            : 'no line of [fsck] reclone_on_errors matches what git fsck found: add one to have fsck clone it again',
      }),
    );
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
  await writeRecord(targets.map((t) => reportOf(t)));
  const report = fsckReport(toplevel, reports.values(), errors, selected.length - targets.length);
  await runReportHooks(config, report, opts);
  return report;
}
