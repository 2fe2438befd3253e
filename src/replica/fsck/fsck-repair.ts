/**
 * Repairing what `fsck` found broken, under the pull lock: a corrupt
 * repository (or a corrupt forkgroup store with all its members) is moved
 * to quarantine and cloned again exactly as pull clones a new repository;
 * corrupt LFS objects are dropped and downloaded again. All or nothing: a
 * failed rebuild puts the old copy back.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BundlemirrorError, forRepo, isBundlemirrorError } from '../../errors.js';
import { fsckFull } from '../../git/maintenance.js';
import { isBareRepository } from '../../git/discovery.js';
import type { Manifest, ManifestEntry } from '../../manifest/manifest.js';
import type { DownloadProgress } from '../../transfer/download.js';
import type { PullConfig } from '../config/config.js';
import type { PullLog } from '../log.js';
import { stateDir } from '../paths.js';
import type { StateStore } from '../state.js';
import { syncRepo, type SyncResult } from '../sync/sync-repo.js';
import { recordSynced, syncContextFor } from '../sync/sync-context.js';
import { diskPathOf } from '../../manifest/tree.js';
import type { Target } from './fsck-targets.js';
import { checkTarget, type CheckOptions } from './fsck-check.js';
import { dropCorruptLfsObjects, lfsProblems } from './fsck-lfs.js';
import { describeError, type FsckRepoReport } from './fsck-report.js';

interface RepairContext {
  reports: Map<string, FsckRepoReport>;
  remote: Manifest | null;
  config: PullConfig;
  state: StateStore;
  opts: { log: PullLog; onProgress?: (repo: string, file: string, p: DownloadProgress) => void; signal?: AbortSignal };
  /** How the run checks: the check under the lock must find what the first one found. */
  check: CheckOptions;
}

/**
 * Re-bootstraps `members` (and `store`, when it is the store that is
 * corrupt: every member is then rebuilt, the first one creating a new
 * store). All or nothing: on any failure the new copies go and the old
 * ones come back.
 */
export async function rebuildGroup(store: Target | null, members: Target[], ctx: RepairContext): Promise<void> {
  const { config, state, opts, reports } = ctx;
  const { log } = opts;
  const all = store ? [store, ...members] : members;
  const head = store ?? members[0]!;
  const fail = (e: BundlemirrorError) => {
    for (const t of all) reports.get(t.dir)!.error = describeError(e);
    log.error(`${head.path}: not repaired: ${e.message}`);
  };

  // a pull may have changed things between the check and the lock
  const again = await checkTarget(head, state, ctx.check);
  if (again.length === 0) {
    if (!store) reports.get(head.dir)!.outcome = 'ok';
    else
      for (const t of all)
        if ((await checkTarget(t, state, ctx.check)).length === 0) reports.get(t.dir)!.outcome = 'ok';
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
async function syncOne(m: Target, entry: ManifestEntry, ctx: RepairContext): Promise<SyncResult | null> {
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

/** Removes a repository's corrupt LFS objects and downloads them again through the ordinary sync. */
export async function repairLfs(t: Target, ctx: RepairContext): Promise<void> {
  const report = ctx.reports.get(t.dir)!;
  const entry = ctx.remote?.[t.path];
  if (!entry) {
    report.error = describeError(
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
    report.error = describeError(e);
    ctx.opts.log.error(`${t.path}: LFS objects not repaired: ${e.message}`);
  }
}
