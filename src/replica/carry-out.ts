/**
 * Carries out one planned action on one repository (purge, metadata, clone
 * or update; a skip is only counted, by the caller) and records it in the
 * state and the run's report. What to do was decided by the planner;
 * nothing here decides.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readAlternates } from '../git/inspect.js';
import type { PullConfig } from './config/config.js';
import type { WorkAction } from './plan/planner.js';
import type { StateStore } from './state.js';
import { applyMetadata, wantedMetadata } from './sync/metadata.js';
import { repoDir } from './paths.js';
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

/** The forkgroup store a repository borrows objects from, if it lives under `objstore`. */
async function storeOf(dir: string, objstore: string): Promise<string | null> {
  const stores = (await readAlternates(dir)).filter((d) => dirname(d) === objstore);
  return stores[0] ?? null;
}
