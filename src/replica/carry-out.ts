/**
 * Carries out one planned action on one repository (purge, metadata, clone
 * or update; a skip is only counted, by the caller) and records it in the
 * state and the run's report. What to do was decided by the planner;
 * nothing here decides.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readAlternates } from '../git/inspect.js';
import type { PullConfig } from './config/config.js';
import type { WorkAction } from './plan/planner.js';
import type { StateStore } from './state.js';
import { applyMetadata, wantedMetadata } from './sync/metadata.js';
import { repoDir, stagingDir } from './paths.js';
import type { PullLog } from './log.js';
import { syncRepo, type SyncResult } from './sync/sync-repo.js';
import { syncContextFor, type SyncContext } from './sync/sync-context.js';
import { dropMember } from './sync/objstore.js';
import type { PullOptions, PullReport } from './pull-options.js';

export async function carryOut(
  action: WorkAction,
  config: PullConfig,
  state: StateStore,
  opts: PullOptions,
  report: PullReport,
  results: Map<string, SyncResult>,
  run: { published: string | null; onIndex: SyncContext['onIndex'] },
): Promise<void> {
  const toplevel = config.core.toplevel;
  switch (action.kind) {
    case 'purge': {
      const dir = await repoDir(toplevel, action.path);
      opts.log.info(`${action.path}: purging (${action.reason})`);
      await purgeRepo(dir, action.path, config, state, opts.log);
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
      const fingerprint = (await state.get(action.path))?.fingerprint ?? action.entry.fingerprint ?? null;
      await state.recordSuccess(action.path, {
        fingerprint,
        head: action.entry.head ?? null,
        description: action.entry.description ?? null,
        owner: action.entry.owner ?? null,
        symlinks: action.entry.symlinks ?? [],
      });
      if (changed.length || action.fields.includes('symlinks')) {
        report.metadata.push(action.path);
        if (fingerprint) report.synced[action.path] = { fingerprint };
      } else report.unchanged += 1;
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
      if (res.outcome !== 'unchanged' || res.metadataChanged.length)
        report.synced[action.path] = { fingerprint: res.fingerprint, ...(res.via !== 'none' ? { via: res.via } : {}) };
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

/**
 * Purges in the order that leaves every crash window to the next purge
 * run: while the repository is still on disk it is a purge candidate, so
 * its state entry goes first and its forkgroup store forgets it second (a
 * crash after either leaves it on disk, purged again next time). The
 * repository then leaves its path in one rename, into staging, which the
 * next pull clears: a crash inside the recursive delete leaves no
 * half-deleted directory where a repository was, which no later run would
 * recognise as a repository, purge or clone into.
 */
async function purgeRepo(
  dir: string,
  path: string,
  config: PullConfig,
  state: StateStore,
  log: PullLog,
): Promise<void> {
  await state.remove(path);
  const store = await storeOf(dir, config.core.objstore);
  if (store && (await dropMember(store, path))) log.info(`${path}: was the last member of ${store}; store removed`);
  const gone = join(stagingDir(config.core.toplevel), `purged-${randomBytes(6).toString('hex')}`);
  await mkdir(dirname(gone), { recursive: true });
  try {
    await rename(dir, gone);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'EXDEV') throw err;
    await rm(dir, { recursive: true, force: true }); // on another filesystem (a mount inside the toplevel): in place
    return;
  }
  await rm(gone, { recursive: true, force: true });
}

/** The forkgroup store a repository borrows objects from, if it lives under `objstore`. */
async function storeOf(dir: string, objstore: string): Promise<string | null> {
  const stores = (await readAlternates(dir)).filter((d) => dirname(d) === objstore);
  return stores[0] ?? null;
}
