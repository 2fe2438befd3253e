/**
 * `bundlemirror status`: where every repository of a replica stands, from
 * what the replica already knows (state.json, the last remote manifest pull
 * saw, the disk). No git process and no network request, unless `fetch` is
 * asked for (one GET of the remote manifest, kept in memory).
 *
 * The JSON form (`ReplicaStatus`) is a contract: fields are only ever
 * added, and `version` changes if one changes meaning.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { isBareRepository } from '../git/discovery.js';
import { listLfsObjects } from '../lfs/store.js';
import { repoPathProblem } from '../git/refname.js';
import { printable } from '../format/untrusted.js';
import type { Manifest } from '../manifest/manifest.js';
import type { PullConfig } from './config/config.js';
import { notSelected } from './plan/planner.js';
import { openState } from './state.js';
import type { RepoState } from './state-file.js';
import { checkToplevelLock } from './toplevel-lock.js';
import { fetchRemoteManifestNow, readKnownRemoteManifest, type KnownRemoteManifest } from './remote-manifest.js';
import { readAcceptedManifest, type AcceptedManifest } from './trusted-documents.js';
import { diskPathOf } from '../manifest/tree.js';
import { readLastRun, readProgress, type Downloading, type LastRun } from './run-record.js';

export const STATUS_VERSION = 1;

/**
 * - `in-sync`: the fingerprint last verified equals the remote manifest's;
 * - `behind`: on disk, but not verified at the manifest's fingerprint;
 * - `failing`: the last attempt failed (see `lastError`); retried by the next pull;
 * - `not-cloned`: in the manifest, not on disk yet;
 * - `not-in-manifest`: on disk and recorded, gone from the remote manifest (a purge candidate);
 * - `unknown`: no remote manifest known yet (pull never fetched one).
 */
export const REPO_STATES = ['in-sync', 'behind', 'failing', 'not-cloned', 'not-in-manifest', 'unknown'] as const;
export type RepoSyncState = (typeof REPO_STATES)[number];

export interface RepoStatus {
  /** Manifest path (`/pub/a.git`). */
  path: string;
  state: RepoSyncState;
  /** One line saying why this state. */
  reason: string;
  onDisk: boolean;
  /** Fingerprint last verified on this replica (state.json), or null. */
  localFingerprint: string | null;
  /** Fingerprint in the remote manifest, or null. */
  remoteFingerprint: string | null;
  /** Bytes under `objects/` (apparent size); null when not on disk or not measured. */
  sizeBytes: number | null;
  /** Git LFS objects in `lfs/objects/`, and their bytes; null when not on disk or not measured. */
  lfsObjects: number | null;
  lfsBytes: number | null;
  /** ISO time of the last verified sync, or null. */
  lastSuccess: string | null;
  lastError: { code: string; message: string; at: string } | null;
  /** Consecutive failed attempts. */
  failures: number;
  /** The last attempt at this repository that changed anything or failed: when and how it ended (unchanged repositories cost no attempt). */
  lastAttempt: { at: string; result: 'ok' | 'failed' } | null;
  /** Files of this repository the running pull is downloading now (empty when none). */
  downloading: Downloading[];
}

export interface ReplicaStatus {
  version: typeof STATUS_VERSION;
  /** ISO time this status was computed. */
  generated: string;
  toplevel: string;
  /** The config file (absolute), or '' when the config was not read from a file. */
  config: string;
  manifest: {
    /** `cached`: pull's copy; `file`: a file: URL; `fetched`: downloaded by --fetch; `none`: never fetched. */
    source: KnownRemoteManifest['source'] | 'none';
    location: string | null;
    /** When that copy was saved (ISO), null when fetched just now or none. */
    savedAt: string | null;
    /** Repositories in it that this replica's include/exclude select. */
    repositories: number;
    /**
     * The newest signed manifest accepted (`[remote] allowed_signers`), or
     * null: when it was published, by whom, and whether that is longer ago
     * than `[remote] manifest_max_age` (a frozen origin, or a host that
     * stopped following it).
     */
    signed: { published: string; principal: string; acceptedAt: string; ageSeconds: number; stale: boolean } | null;
  };
  /**
   * The last pull run (daemon runs included): when, and how it ended. A run
   * whose manifest came back unchanged says the origin is quiet; `error`
   * with E_HTTP says it could not be reached. null before the first run.
   */
  lastRun: LastRun | null;
  /** What the running pull is downloading now, from its progress file (refreshed every ~2 s); empty when no pull runs. */
  downloads: Downloading[];
  /** The toplevel lock, held by a running pull (or a repairing fsck). */
  lock: { held: boolean; pid: number | null; hostname: string | null; startedAt: string | null };
  counts: Record<RepoSyncState, number> & { total: number };
  /** Sum of `sizeBytes` plus `objstoreBytes`; null when sizes were not measured. */
  sizeBytes: number | null;
  /** Bytes under `[core] objstore` (forkgroup stores whose objects members share); null when not measured. */
  objstoreBytes: number | null;
  /** Git LFS objects of all repositories, and their bytes; null when sizes were not measured. */
  lfs: { objects: number; bytes: number } | null;
  /** Sorted by path. */
  repos: RepoStatus[];
}

export interface StatusOptions {
  /** Measure `objects/` of each repository (a walk of the directory; default true). */
  sizes?: boolean;
  /** Download the remote manifest now instead of using pull's copy (one request; nothing is stored). */
  fetch?: boolean;
  /** Clock, for tests. */
  now?: () => Date;
  signal?: AbortSignal;
}

export async function replicaStatus(config: PullConfig, opts: StatusOptions = {}): Promise<ReplicaStatus> {
  const toplevel = config.core.toplevel;
  const now = (opts.now ?? (() => new Date()))();
  const state = await openState(toplevel, { warn: () => {} });
  const recorded = await state.all();
  const known = opts.fetch ? await fetchRemoteManifestNow(config, opts.signal) : await readKnownRemoteManifest(config);

  const selected: Manifest = {};
  for (const [path, entry] of Object.entries(known?.manifest ?? {})) {
    if (!notSelected(path, config.pull)) selected[path] = entry;
  }
  const paths = new Set([...Object.keys(selected), ...Object.keys(recorded)]);
  const downloads =
    (await readProgress(toplevel))?.downloads.map((d) => ({
      ...d,
      repo: printable(d.repo),
      file: printable(d.file),
    })) ?? [];
  const limit = pLimit(8);
  const repos = await Promise.all(
    [...paths]
      .filter((p) => repoPathProblem(p) === null)
      .map((path) =>
        limit(async () => {
          const dir = diskPathOf(toplevel, path);
          const onDisk = await isBareRepository(dir);
          const rec = recorded[path];
          const entry = selected[path];
          if (!entry && !onDisk && !rec?.lastError) return null; // a state entry pull will forget
          const classified = classify(rec, entry ? (entry.fingerprint ?? null) : undefined, onDisk, known !== null);
          const lfs = onDisk && opts.sizes !== false ? await listLfsObjects(dir) : null;
          const status: RepoStatus = {
            path,
            ...classified,
            onDisk,
            localFingerprint: rec?.fingerprint ?? null,
            remoteFingerprint: entry?.fingerprint ?? null,
            sizeBytes: onDisk && opts.sizes !== false ? await objectsSize(dir) : null,
            lfsObjects: lfs ? lfs.length : null,
            lfsBytes: lfs ? lfs.reduce((n, o) => n + o.size, 0) : null,
            lastSuccess: rec?.lastSuccess ?? null,
            lastError: rec?.lastError
              ? { code: rec.lastError.code, message: printable(rec.lastError.message), at: rec.lastError.at }
              : null,
            failures: rec?.failures ?? 0,
            lastAttempt: lastAttemptOf(rec),
            downloading: downloads.filter((d) => d.repo === path),
          };
          return status;
        }),
      ),
  );
  const list = repos
    .filter((r): r is RepoStatus => r !== null)
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const counts = Object.fromEntries(REPO_STATES.map((s) => [s, 0])) as Record<RepoSyncState, number>;
  for (const r of list) counts[r.state] += 1;
  const sizes = list.map((r) => r.sizeBytes).filter((n): n is number => n !== null);
  const objstoreBytes = opts.sizes === false ? null : await treeSize(config.core.objstore);
  return {
    version: STATUS_VERSION,
    generated: now.toISOString(),
    toplevel,
    config: config.file,
    manifest: {
      source: known?.source ?? 'none',
      location: known?.location ?? null,
      savedAt: known?.savedAt ?? null,
      repositories: Object.keys(selected).length,
      signed: signedManifestAge(await readAcceptedManifest(toplevel), config.remote.manifestMaxAgeMs, now),
    },
    lastRun: await readLastRun(toplevel),
    downloads,
    lock: await lockState(toplevel),
    counts: { ...counts, total: list.length },
    sizeBytes: objstoreBytes === null ? null : sizes.reduce((a, b) => a + b, objstoreBytes),
    objstoreBytes,
    lfs:
      opts.sizes === false
        ? null
        : {
            objects: list.reduce((n, r) => n + (r.lfsObjects ?? 0), 0),
            bytes: list.reduce((n, r) => n + (r.lfsBytes ?? 0), 0),
          },
    repos: list,
  };
}

function lastAttemptOf(rec: RepoState | undefined): RepoStatus['lastAttempt'] {
  const ok = rec?.lastSuccess ?? null;
  const failed = rec?.lastError?.at ?? null;
  if (failed && (!ok || failed >= ok)) return { at: failed, result: 'failed' };
  return ok ? { at: ok, result: 'ok' } : null;
}

function signedManifestAge(
  accepted: AcceptedManifest | null,
  maxAgeMs: number,
  now: Date,
): ReplicaStatus['manifest']['signed'] {
  if (!accepted) return null;
  const ageMs = Math.max(0, now.getTime() - Date.parse(accepted.published));
  return {
    published: accepted.published,
    principal: accepted.principal,
    acceptedAt: accepted.acceptedAt,
    ageSeconds: Math.floor(ageMs / 1000),
    stale: maxAgeMs > 0 && ageMs > maxAgeMs,
  };
}

/** `remote` is the manifest fingerprint (null: entry without one), or undefined when the manifest does not list the repository. */
function classify(
  rec: RepoState | undefined,
  remote: string | null | undefined,
  onDisk: boolean,
  haveManifest: boolean,
): { state: RepoSyncState; reason: string } {
  if (rec?.lastError) {
    const n = rec.failures ?? 1;
    return {
      state: 'failing',
      reason: `${rec.lastError.code} at ${rec.lastError.at}: ${printable(rec.lastError.message)}${n > 1 ? ` (${n} attempts in a row)` : ''}`,
    };
  }
  if (!haveManifest) return { state: 'unknown', reason: 'no remote manifest known yet: run pull (or status --fetch)' };
  if (remote === undefined)
    return { state: 'not-in-manifest', reason: 'gone from the remote manifest; pull purges it when purge is on' };
  if (!onDisk) return { state: 'not-cloned', reason: 'in the remote manifest, not on disk yet' };
  if (!rec || !rec.fingerprint) return { state: 'behind', reason: 'on disk, but not verified by this replica yet' };
  if (remote === null)
    return { state: 'behind', reason: 'the manifest has no fingerprint for it, so it cannot be shown current' };
  if (rec.fingerprint !== remote)
    return {
      state: 'behind',
      reason: `verified at ${rec.fingerprint.slice(0, 12)}, the manifest has ${remote.slice(0, 12)}`,
    };
  return { state: 'in-sync', reason: `fingerprint ${remote.slice(0, 12)} verified` };
}

async function lockState(toplevel: string): Promise<ReplicaStatus['lock']> {
  const { held, owner } = await checkToplevelLock(toplevel);
  return { held, pid: owner?.pid ?? null, hostname: owner?.hostname ?? null, startedAt: owner?.startedAt ?? null };
}

/** Apparent size of every file under `<dir>/objects`, symlinks not followed. */
export function objectsSize(dir: string): Promise<number> {
  return treeSize(join(dir, 'objects'));
}

/** Apparent size of every file under `root` (0 when it does not exist), symlinks not followed. */
export async function treeSize(root: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile())
        total += await lstat(p).then(
          (s) => s.size,
          () => 0,
        );
    }
  };
  await walk(root);
  return total;
}
