/**
 * What the replica knows about each repository between runs, kept in
 * `<toplevel>/.bundlemirror/state.json` (lowdb): the fingerprint last
 * verified, the metadata last applied, the last success or failure, the
 * bundles already applied; plus the remote manifest's HTTP validators.
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
 * - Writes are atomic and durable: temp file, fsync, rename, fsync of the
 *   directory (src/fs/atomic.ts). lowdb's own JSONFile (steno) renames
 *   atomically too, but without fsync and through one fixed temp name.
 */
import { stat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Low } from 'lowdb';
import * as z from 'zod';
import { BundlemirrorError } from '../errors.js';
import { printable } from '../format/untrusted.js';
import { acquireLock } from '../lock/lock.js';
import { STATE_DIR } from './paths.js';
import {
  emptyState,
  ManifestValidatorsSchema,
  RepoStateSchema,
  STATE_FILE,
  StateFileAdapter,
  type ManifestValidators,
  type RepoErrorSchema,
  type RepoState,
  type StateData,
} from './state-file.js';

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
  /** Absolute path of state.json. */
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
  return new LowStateStore(join(dir, STATE_FILE), opts);
}

interface PendingChange {
  apply: (data: StateData) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

class LowStateStore implements StateStore {
  private readonly adapter: StateFileAdapter;
  private readonly db: Low<StateData>;
  private readonly now: () => Date;
  private pending: PendingChange[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    readonly file: string,
    private readonly opts: OpenStateOptions,
  ) {
    const warn = opts.warn ?? ((m: string) => process.emitWarning(m));
    this.now = opts.now ?? (() => new Date());
    this.adapter = new StateFileAdapter(file, warn, this.now);
    this.db = new Low<StateData>(this.adapter, emptyState());
  }

  private async snapshot(): Promise<StateData> {
    // a fresh read each time: another process may have written since
    return (await this.adapter.readShared()) ?? emptyState();
  }

  async get(path: string): Promise<RepoState | undefined> {
    return (await this.snapshot()).repos[path];
  }

  async all(): Promise<Record<string, RepoState>> {
    return (await this.snapshot()).repos;
  }

  update(path: string, fn: (current: RepoState | undefined) => RepoState | undefined): Promise<RepoState | undefined> {
    return this.change((data) => {
      const current = data.repos[path];
      const next = fn(current === undefined ? undefined : structuredClone(current));
      if (next === undefined) {
        delete data.repos[path];
        return undefined;
      }
      const checked = RepoStateSchema.safeParse(next);
      if (!checked.success) {
        const issue = checked.error.issues[0]!;
        throw new BundlemirrorError(
          'E_DISK',
          `refusing to record invalid state for ${path}: ${issue.path.join('.')}: ${issue.message}`,
          { repo: path },
        );
      }
      data.repos[path] = checked.data;
      return checked.data;
    });
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
    await this.change((data) => {
      for (const p of paths) delete data.repos[p];
    });
  }

  async retain(keep: Iterable<string>): Promise<string[]> {
    const keepSet = new Set(keep);
    return (await this.change((data) => {
      const dropped = Object.keys(data.repos).filter((p) => !keepSet.has(p));
      for (const p of dropped) delete data.repos[p];
      return dropped.sort();
    })) as string[];
  }

  async manifestValidators(url: string): Promise<ManifestValidators | undefined> {
    const v = (await this.snapshot()).manifest;
    return v && v.url === url ? v : undefined;
  }

  async setManifestValidators(validators: ManifestValidators): Promise<void> {
    const checked = ManifestValidatorsSchema.parse(validators);
    await this.change((data) => {
      data.manifest = checked;
    });
  }

  /** Queues a change; every change queued while a write is in flight goes into the next write. */
  private change<T>(apply: (data: StateData) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ apply, resolve: resolve as (v: unknown) => void, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        let outcomes: { ok: boolean; value: unknown }[];
        try {
          outcomes = await this.withLock(async () => {
            this.adapter.quarantine = true;
            try {
              this.db.data = emptyState(); // Low.read() keeps the old data when the file is missing
              await this.db.read();
            } finally {
              this.adapter.quarantine = false;
            }
            const results = batch.map((c) => {
              try {
                return { ok: true, value: c.apply(this.db.data) };
              } catch (err) {
                return { ok: false, value: err };
              }
            });
            if (results.some((r) => r.ok)) await this.db.write();
            return results;
          });
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

function describeError(err: unknown, at: string): z.infer<typeof RepoErrorSchema> {
  // messages carry what an origin sent (git's stderr, ref names, URLs): state.json feeds status and people's terminals
  if (err instanceof BundlemirrorError) return { message: printable(err.message), code: err.code, at };
  const e = err as NodeJS.ErrnoException | undefined;
  const message = printable(err instanceof Error ? err.message : String(err));
  return { message, code: typeof e?.code === 'string' ? e.code : 'E_UNKNOWN', at };
}
