/**
 * What the replica knows about each repository between runs, kept under
 * `<toplevel>/.bundlemirror/`: the fingerprint last verified, the metadata
 * last applied, the last success or failure, the bundles already applied;
 * plus the remote manifest's HTTP validators. On disk it is a snapshot,
 * `state.json`, and a journal of the changes since (state-file.ts), so
 * that recording one repository of 10,000 appends a line.
 *
 * Rules the callers rely on:
 * - Record a repository only after it was verified (its `git show-ref`
 *   fingerprint computed from disk equals the origin's): the planner skips
 *   repositories whose recorded fingerprint matches the manifest.
 * - The store is a cache, never the truth: a missing state.json starts
 *   empty, a corrupt one is moved aside to `state.json.corrupt-<time>` (with
 *   a warning) and the run starts empty; the next pull verifies each
 *   repository against the manifest again.
 * - Several processes may share it (`pull`, `status`, a second toplevel
 *   tool): every change is a read-modify-write under a file lock
 *   (`state.json.lock`, src/lock/lock.ts), so nobody loses another's update.
 *   Changes made concurrently in one process are batched into one write.
 * - Writes are durable before they resolve: a journal line is fsynced, a
 *   snapshot written atomically (src/fs/atomic.ts). A run killed anywhere
 *   leaves each repository's record as it was or as it was being written.
 * - A read starts from what this process read last when the snapshot is the
 *   same file: only the journal's new lines are read.
 * - The table `all()` hands out is never changed: the next change copies it
 *   (about 6 ms at 10,000 entries, once per pull). `get()` hands out
 *   entries, which are replaced, never edited, so it needs no copy.
 */
import { stat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { printable } from '../format/untrusted.js';
import { acquireLock } from '../lock/lock.js';
import { STATE_DIR } from './paths.js';
import {
  STATE_FILE,
  StateFiles,
  copyOf,
  UnreadableState,
  stateSchemas,
  type LoadedState,
  type ManifestValidators,
  type RepoState,
  type StateData,
  type StateRecord,
} from './state-file.js';
import { fastManifestValidators, fastRepoState } from './state-validate.js';
import type { RepoError } from './state-schema.js';

/** What a caller knows after verifying a repository. */
export interface VerifiedRepo {
  fingerprint: string | null;
  head?: string | null;
  description?: string | null;
  owner?: string | null;
  symlinks?: string[];
  /** Replaces the recorded list when given; kept otherwise. */
  appliedBundles?: string[];
}

export interface StateStore {
  /** Absolute path of state.json (its journal lies beside it). */
  readonly file: string;
  get(path: string): Promise<RepoState | undefined>;
  /** Every recorded repository, keyed by manifest path (shared with later reads of the same file: read it, never change it). */
  all(): Promise<Record<string, RepoState>>;
  /**
   * Read-modify-write of one entry under the lock. `fn` gets a copy of the
   * current entry (or undefined) and returns the new one, or undefined to
   * delete it. Resolves once written.
   */
  update(path: string, fn: (current: RepoState | undefined) => RepoState | undefined): Promise<RepoState | undefined>;
  /** After verification: records fingerprint and metadata, clears the error. */
  recordSuccess(path: string, verified: VerifiedRepo): Promise<RepoState>;
  /** Records a failed attempt; keeps what was known before. */
  recordFailure(path: string, err: unknown): Promise<RepoState>;
  remove(...paths: string[]): Promise<void>;
  /** Drops entries whose path is not in `keep` (purged or vanished repositories); returns the dropped paths. */
  retain(keep: Iterable<string>): Promise<string[]>;
  /** The remote manifest's validators, if they were recorded for this URL. */
  manifestValidators(url: string): Promise<ManifestValidators | undefined>;
  setManifestValidators(validators: ManifestValidators): Promise<void>;
}

export interface OpenStateOptions {
  /** Where warnings go (corrupt file moved aside, entries dropped). Default: process warning. */
  warn?: (message: string) => void;
  /** Clock, for tests. */
  now?: () => Date;
  /** How long to wait for another process's write (default 20 s). */
  lockWaitMs?: number;
}

/** Opens (does not yet read) the state store of a toplevel, creating `.bundlemirror/` if needed. */
export async function openState(toplevel: string, opts: OpenStateOptions = {}): Promise<StateStore> {
  try {
    if (!(await stat(toplevel)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new BundlemirrorError('E_TOPLEVEL', `toplevel ${toplevel} is not a directory: ${(err as Error).message}`, {
      hint: 'create it, or fix [core] toplevel',
      cause: err,
    });
  }
  const dir = join(toplevel, STATE_DIR);
  await mkdir(dir, { recursive: true });
  return new JournalStateStore(join(dir, STATE_FILE), opts);
}

/** A journal longer than this and than a quarter of the snapshot is folded into a new snapshot. */
const COMPACT_MIN_BYTES = 64 << 10;

/** What a change sees: the state as the last change of its batch left it. */
interface ChangeView {
  get(path: string): RepoState | undefined;
  paths(): string[];
  manifest(): ManifestValidators | undefined;
}

interface PendingChange {
  /** The records to append, and what the caller gets; throws to refuse (nothing of it is written). */
  apply: (view: ChangeView) => Promise<{ records: StateRecord[]; value: unknown }>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

class JournalStateStore implements StateStore {
  private readonly files: StateFiles;
  private readonly now: () => Date;
  private readonly warn: (message: string) => void;
  /** The last read, to read on from. */
  private last: LoadedState | null = null;
  /** The table handed out by all(): never changed, copied before a change. */
  private shared: StateData | null = null;
  private pending: PendingChange[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    readonly file: string,
    private readonly opts: OpenStateOptions,
  ) {
    this.now = opts.now ?? (() => new Date());
    this.warn = opts.warn ?? ((m: string) => process.emitWarning(m));
    this.files = new StateFiles(file, this.warn);
  }

  /** The state as on disk now (another process may have written since); `share`: handed out, never to be changed. */
  private async snapshot(share: boolean): Promise<StateData> {
    try {
      this.last = await this.files.load(this.last, this.last !== null && this.last.data === this.shared);
    } catch (err) {
      if (!(err instanceof UnreadableState)) throw err;
      // only a writer holding the lock moves it aside (an unlocked reader could move a good file a writer had just put in place)
      this.warn(`${this.file}: ${err.message}; treating the state as empty for now`);
      this.last = null;
      return { repos: {} };
    }
    if (share) this.shared = this.last.data;
    return this.last.data;
  }

  async get(path: string): Promise<RepoState | undefined> {
    return (await this.snapshot(false)).repos[path];
  }

  async all(): Promise<Record<string, RepoState>> {
    return (await this.snapshot(true)).repos;
  }

  update(path: string, fn: (current: RepoState | undefined) => RepoState | undefined): Promise<RepoState | undefined> {
    return this.change(async (view) => {
      const current = view.get(path);
      const next = fn(current === undefined ? undefined : structuredClone(current));
      if (next === undefined) return { records: current ? [{ repo: path, state: null }] : [], value: undefined };
      const checked = fastRepoState(next) ?? (await refusedRepoState(path, next));
      return { records: [{ repo: path, state: checked }], value: checked };
    }) as Promise<RepoState | undefined>;
  }

  async recordSuccess(path: string, verified: VerifiedRepo): Promise<RepoState> {
    const at = this.now().toISOString();
    const result = await this.update(path, (current) => {
      const next: RepoState = {
        fingerprint: verified.fingerprint,
        head: verified.head ?? null,
        description: verified.description ?? null,
        owner: verified.owner ?? null,
        symlinks: [...(verified.symlinks ?? [])].sort(),
        lastSuccess: at,
      };
      const bundles = verified.appliedBundles ?? current?.appliedBundles;
      if (bundles) next.appliedBundles = [...bundles];
      return next;
    });
    return result!;
  }

  async recordFailure(path: string, err: unknown): Promise<RepoState> {
    const at = this.now().toISOString();
    const lastError = describeError(err, at);
    const result = await this.update(path, (current) => ({
      ...(current ?? { fingerprint: null }),
      lastError,
      failures: (current?.failures ?? 0) + 1,
    }));
    return result!;
  }

  async remove(...paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    await this.change(async (view) => ({
      records: paths.filter((p) => view.get(p) !== undefined).map((p) => ({ repo: p, state: null })),
      value: undefined,
    }));
  }

  async retain(keep: Iterable<string>): Promise<string[]> {
    const keepSet = new Set(keep);
    return (await this.change(async (view) => {
      const dropped = view
        .paths()
        .filter((p) => !keepSet.has(p))
        .sort();
      return { records: dropped.map((p) => ({ repo: p, state: null })), value: dropped };
    })) as string[];
  }

  async manifestValidators(url: string): Promise<ManifestValidators | undefined> {
    const v = (await this.snapshot(false)).manifest;
    return v && v.url === url ? v : undefined;
  }

  async setManifestValidators(validators: ManifestValidators): Promise<void> {
    const checked =
      fastManifestValidators(validators) ?? (await stateSchemas()).ManifestValidatorsSchema.parse(validators);
    await this.change(async () => ({ records: [{ manifest: checked }], value: undefined }));
  }

  /** Queues a change; every change queued while a write is in flight goes into the next write. */
  private change(apply: PendingChange['apply']): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push({ apply, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        let outcomes: { ok: boolean; value: unknown }[];
        try {
          outcomes = await this.withLock(() => this.write(batch));
        } catch (err) {
          for (const c of batch) c.reject(err);
          continue;
        }
        outcomes.forEach((o, i) => (o.ok ? batch[i]!.resolve(o.value) : batch[i]!.reject(o.value)));
      }
    } finally {
      this.flushing = null;
    }
  }

  /** One read-modify-write, under the lock. */
  private async write(batch: PendingChange[]): Promise<{ ok: boolean; value: unknown }[]> {
    let loaded: LoadedState;
    const last = this.last;
    // until this write is done, the next read starts afresh
    this.last = null;
    try {
      loaded = await this.files.load(last, last !== null && last.data === this.shared);
    } catch (err) {
      if (!(err instanceof UnreadableState)) throw err;
      await this.files.quarantine(err.message, this.now());
      loaded = await this.files.load(null);
    }
    if (loaded.data === this.shared) loaded = { ...loaded, data: copyOf(loaded.data) };
    // changes apply to the data as the batch's earlier changes left it; a refused change leaves nothing
    const data = loaded.data;
    const records: StateRecord[] = [];
    const view: ChangeView = {
      get: (p) => data.repos[p],
      paths: () => Object.keys(data.repos),
      manifest: () => data.manifest,
    };
    const results: { ok: boolean; value: unknown }[] = [];
    for (const c of batch) {
      try {
        const out = await c.apply(view);
        for (const r of out.records) applyRecord(data, r);
        records.push(...out.records);
        results.push({ ok: true, value: out.value });
      } catch (err) {
        results.push({ ok: false, value: err });
      }
    }
    if (records.length === 0) {
      this.last = loaded;
      return results;
    }
    const journalBytes = loaded.offset + loaded.tail;
    if (loaded.journal === null || journalBytes > Math.max(COMPACT_MIN_BYTES, loaded.snapshotBytes / 4)) {
      // no snapshot yet, version 1, or a journal long enough to slow every read down
      this.last = await this.files.compact(data);
    } else {
      const offset = await this.files.append({ ...loaded, journal: loaded.journal }, records);
      this.last = { ...loaded, offset, tail: 0 };
    }
    return results;
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    // held for one read-modify-write; a writer killed meanwhile (a pull killed with -9) is recognised by its pid and its lock taken over
    const release = await acquireLock({
      path: this.file,
      what: `writer of ${this.file}`,
      wait: this.opts.lockWaitMs ?? 20_000,
      staleMs: 10_000,
    });
    try {
      return await fn();
    } finally {
      await release();
    }
  }
}

function applyRecord(data: StateData, r: StateRecord): void {
  if ('manifest' in r) data.manifest = r.manifest;
  else if (r.state === null) delete data.repos[r.repo];
  else data.repos[r.repo] = r.state;
}

/**
 * zod decides, and says why, about an entry the hand-written check refused.
 * Every entry is built here from values already checked (a fingerprint we
 * computed, a manifest we validated), so one that fails is a bug in
 * bundlemirror, not a disk problem: E_INTERNAL, and nothing is written.
 */
async function refusedRepoState(path: string, next: unknown): Promise<RepoState> {
  const checked = (await stateSchemas()).RepoStateSchema.safeParse(next);
  if (checked.success) return checked.data;
  const issue = checked.error.issues[0]!;
  throw new BundlemirrorError(
    'E_INTERNAL',
    `internal error: refusing to record invalid state for ${path}: ${issue.path.join('.')}: ${issue.message}`,
    { repo: path, hint: 'this is a bug in bundlemirror; please report it; state.json was left as it was' },
  );
}

function describeError(err: unknown, at: string): RepoError {
  // messages carry what an origin sent (git's stderr, ref names, URLs): state.json feeds status and people's terminals
  if (err instanceof BundlemirrorError) return { message: printable(err.message), code: err.code, at };
  const e = err as NodeJS.ErrnoException | undefined;
  const message = printable(err instanceof Error ? err.message : String(err));
  return { message, code: typeof e?.code === 'string' ? e.code : 'E_UNKNOWN', at };
}
