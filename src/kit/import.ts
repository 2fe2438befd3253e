/**
 * `bundlemirror import`: applies an offline kit exactly as a pull applies
 * the origin. The kit is unpacked and verified into
 * `<toplevel>/.bundlemirror/import-<random>/` (read-kit.ts: a refused kit
 * changes nothing), that directory is served on 127.0.0.1 for the length of
 * the run (the same static server as `serve`: nothing leaves the machine),
 * and the ordinary pull runs against it: same planner, same resumable and
 * verified downloads, same single ref transaction, same state, hooks and
 * local manifest.
 *
 * The pull is limited to the repositories the kit carries (the others keep
 * their state and their entries in the local manifest and projects.list),
 * never purges, and does no `git fetch` unless `online` is set (then gaps
 * are closed from `[bundlemirror] git_url` as usual). A repository whose
 * kit entry is older than what the replica holds (`modified`) is left
 * alone: an old kit never rolls a replica back.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifestIfAny, writeManifestFile, type Manifest } from '../manifest/manifest.js';
import { startServer } from '../server/server.js';
import type { DownloadProgress } from '../transfer/download.js';
import { checkToplevel, type PullConfig } from '../replica/config/config.js';
import { acquireToplevelLock } from '../replica/toplevel-lock.js';
import { guardReplica } from '../replica/own-paths.js';
import type { PullLog } from '../replica/log.js';
import { stateDir } from '../replica/paths.js';
import { pull, type PullReport } from '../replica/pull.js';
import { remoteManifestCopyPath } from '../replica/remote-manifest.js';
import { forgetManifestValidators } from '../replica/manifest-poll.js';
import { openState } from '../replica/state.js';
import { KIT_MANIFEST, type Kit } from './kit-format.js';
import { extractKit } from './read-kit.js';

export interface ImportOptions {
  /** The kit file. */
  kit: string;
  /** Allow `git fetch` from [bundlemirror] git_url to close gaps the kit leaves (default: offline). */
  online?: boolean;
  /** Sync every repository the kit carries even when its fingerprint looks current. */
  force?: boolean;
  log: PullLog;
  onProgress?: (repo: string, file: string, p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface ImportReport {
  kit: Kit;
  pull: PullReport;
  /** Carried by the kit, but older than what the replica holds: left alone. */
  older: string[];
}

export async function importKit(config: PullConfig, opts: ImportOptions): Promise<ImportReport> {
  const { log } = opts;
  await checkToplevel(config);
  await guardReplica(config);
  const toplevel = config.core.toplevel;
  // a running pull would make us unpack a large kit only to be refused the lock afterwards
  await (
    await acquireToplevelLock(toplevel)
  )();

  const work = join(stateDir(toplevel), `import-${randomBytes(6).toString('hex')}`);
  await mkdir(work, { recursive: true });
  try {
    const extracted = await extractKit(opts.kit, work, { signal: opts.signal });
    const { kit, manifest } = extracted;
    log.info(
      `kit ${opts.kit}: ${kit.repos.length} repositories, ${kit.files.length} files verified (exported ${kit.created} from ${kit.source})`,
    );

    const local = (await readManifestIfAny(config.core.manifest)) ?? {};
    const older = kit.repos.filter((p) => {
      const mine = local[p]?.modified;
      const theirs = manifest[p]?.modified;
      return mine !== undefined && theirs !== undefined && theirs < mine;
    });
    for (const p of older) log.warn(`${p}: the kit's copy is older than what this replica holds; left alone`);
    const carried = new Set(kit.repos.filter((p) => !older.includes(p)));

    const server = await startServer({ bundles: work, host: '127.0.0.1', port: 0, log: false });
    let report: PullReport;
    try {
      const kitConfig: PullConfig = {
        ...config,
        // a kit carries no signatures: it is trusted through kit.json's hashes and the hands that carried it
        remote: { ...config.remote, manifest: `${server.url}/${KIT_MANIFEST}`, allowedSigners: null },
        bundlemirror: {
          ...config.bundlemirror,
          bundles: `${server.url}/`,
          gitUrl: opts.online ? config.bundlemirror.gitUrl : '',
        },
        pull: { ...config.pull, purge: false },
      };
      report = await pull(kitConfig, {
        purge: false,
        // not a pass over the origin's manifest: leave pull's copy and validators to the next real pull
        partial: true,
        scope: (p) => carried.has(p),
        force: opts.force,
        log,
        onProgress: opts.onProgress,
        signal: opts.signal,
      });
    } finally {
      await server.close({ graceMs: 0 });
    }
    const failed = new Set(report.failed.map((e) => e.repo));
    await rememberKitManifest(
      config,
      log,
      manifest,
      [...carried].filter((p) => !failed.has(p)),
    );
    return { kit, pull: report, older };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * What `status` compares against: the kit's entries for the repositories
 * it brought, over the remote manifest pull last saved. The next online
 * pull downloads the real one in full (its validators are cleared), so it
 * sees every difference between the kit and the origin.
 */
async function rememberKitManifest(
  config: PullConfig,
  log: PullLog,
  kitManifest: Manifest,
  synced: string[],
): Promise<void> {
  if (synced.length === 0 || config.remote.manifest.startsWith('file:')) return;
  const copy = remoteManifestCopyPath(config.core.toplevel);
  const next = (await readManifestIfAny(copy)) ?? {};
  for (const p of synced) if (kitManifest[p]) next[p] = kitManifest[p]!;
  // the validators go first: killed in between, old validators must not vouch for the new copy (manifest-poll.ts)
  await forgetManifestValidators(config, await openState(config.core.toplevel, { warn: (m) => log.warn(m) }));
  await writeManifestFile(copy, next);
}
