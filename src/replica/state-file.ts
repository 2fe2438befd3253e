/**
 * The replica's state.json on disk: its schema, and lowdb's adapter that
 * reads it tolerantly (a malformed entry is dropped and re-verified, a
 * corrupt file moved aside by a reader holding the lock) and writes it
 * atomically and durably (src/fs/atomic.ts).
 */
import { readFile, rename } from 'node:fs/promises';
import type { Adapter } from 'lowdb';
import * as z from 'zod';
import { writeFileAtomic } from '../fs/atomic.js';
import { safeJson } from '../format/untrusted.js';
import { fastRepoState } from './state-validate.js';

export const STATE_FILE = 'state.json';
export const STATE_VERSION = 1;

const sha1 = z.string().regex(/^[0-9a-f]{40}$/);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const RepoErrorSchema = z.object({
  message: z.string(),
  /** BundlemirrorError code, or the errno code, or E_UNKNOWN. */
  code: z.string(),
  /** ISO time. */
  at: z.string(),
});

export const RepoStateSchema = z
  .object({
    /** Fingerprint last verified on disk; null: repository has no refs, or not verified yet. */
    fingerprint: sha1.nullable(),
    head: z.string().nullable().optional(),
    description: z.string().nullable().optional(),
    owner: z.string().nullable().optional(),
    /** Symlinks (manifest paths) we created pointing at this repository. */
    symlinks: z.array(z.string()).optional(),
    /** ISO time of the last verified sync. */
    lastSuccess: z.string().optional(),
    /** Set by a failed attempt, cleared by the next success; the planner retries such repositories. */
    lastError: RepoErrorSchema.optional(),
    /** Consecutive failed attempts. */
    failures: z.number().int().nonnegative().optional(),
    /** sha256 of bundles already unbundled into this repository. */
    appliedBundles: z.array(sha256).optional(),
  })
  .loose();
export type RepoState = z.infer<typeof RepoStateSchema>;

export const ManifestValidatorsSchema = z.object({
  /** The manifest URL these belong to: validators for another URL are useless. */
  url: z.string(),
  etag: z.string().nullable(),
  lastModified: z.string().nullable(),
  /** ISO time of the fetch. */
  fetchedAt: z.string(),
  /** Config file mtime at the fetch; grok-pull refetches in full after a config change. */
  configMtimeMs: z.number().optional(),
});
export type ManifestValidators = z.infer<typeof ManifestValidatorsSchema>;

export interface StateData {
  version: typeof STATE_VERSION;
  repos: Record<string, RepoState>;
  manifest?: ManifestValidators;
}

const StateFileSchema = z
  .object({
    version: z.literal(STATE_VERSION),
    repos: z.record(z.string(), z.unknown()),
    manifest: z.unknown().optional(),
  })
  .loose();

export function emptyState(): StateData {
  return { version: STATE_VERSION, repos: {} };
}

/**
 * lowdb adapter: tolerant, validating reads; atomic, durable writes. Only a
 * reader holding the lock moves a corrupt file aside (an unlocked reader
 * could otherwise move away a good file a writer had just put in place).
 */
export class StateFileAdapter implements Adapter<StateData> {
  quarantine = false;
  /**
   * The bytes this adapter last read or wrote and what they hold: a run
   * reads the state several times (each change re-reads it under the lock,
   * as another process may have written), and bytes equal to these need no
   * parse. Equality of the bytes, not of a timestamp, decides.
   */
  private last: { bytes: Buffer; data: StateData } | null = null;

  constructor(
    private readonly file: string,
    private readonly warn: (message: string) => void,
    private readonly now: () => Date,
  ) {}

  /** What the file holds, for lowdb, which changes it. */
  async read(): Promise<StateData | null> {
    const data = await this.readShared();
    return data && copyOf(data);
  }

  /** What the file holds, shared with later reads of the same bytes: for readers only. */
  async readShared(): Promise<StateData | null> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (this.last?.bytes.equals(bytes)) return this.last.data;
    const text = bytes.toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      return this.unreadable(`not valid JSON (${(err as Error).message})`);
    }
    // the usual file passes a look at its top level; zod's record check walks all 10,000 keys
    const top = plainTop(json) ?? StateFileSchema.safeParse(json);
    if (!top.success) {
      const v = (json as { version?: unknown } | null)?.version;
      return this.unreadable(
        v !== undefined && v !== STATE_VERSION
          ? `version ${String(v)}, this bundlemirror reads version ${STATE_VERSION}`
          : 'not a state file',
      );
    }
    const data = emptyState();
    const dropped: string[] = [];
    for (const [path, entry] of Object.entries(top.data.repos)) {
      if (path === '__proto__') continue; // not a repository path; assigning it would replace the map's prototype
      const fast = fastRepoState(entry);
      if (fast) {
        data.repos[path] = fast;
        continue;
      }
      const parsed = RepoStateSchema.safeParse(entry);
      if (parsed.success) data.repos[path] = parsed.data;
      else dropped.push(path);
    }
    if (dropped.length > 0) {
      this.warn(
        `${this.file}: ignoring malformed state of ${dropped.length} repositor${dropped.length === 1 ? 'y' : 'ies'} (${dropped.slice(0, 3).join(', ')}${dropped.length > 3 ? ', ...' : ''}); they will be re-verified`,
      );
    }
    const validators = ManifestValidatorsSchema.safeParse(top.data.manifest);
    if (validators.success) data.manifest = validators.data;
    // a file with dropped entries is parsed (and warned about) every time
    this.last = dropped.length ? null : { bytes, data };
    return data;
  }

  async write(data: StateData): Promise<void> {
    const bytes = Buffer.from(safeJson(data, 1) + '\n', 'utf8');
    this.last = null;
    await writeFileAtomic(this.file, bytes);
    // lowdb replaces its data with a fresh read before the next change, so this object stays as written
    this.last = { bytes, data };
  }

  private async unreadable(why: string): Promise<null> {
    if (!this.quarantine) {
      this.warn(`${this.file}: ${why}; treating the state as empty for now`);
      return null;
    }
    const aside = `${this.file}.corrupt-${this.now().toISOString().replace(/[:.]/g, '-')}`;
    try {
      await rename(this.file, aside);
      this.warn(
        `${this.file}: ${why}; moved it to ${aside} and starting with empty state (repositories will be re-verified)`,
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return null;
  }
}

/** The top level of a well-formed state file, as StateFileSchema would return it; null: let zod look. */
function plainTop(
  json: unknown,
): { success: true; data: { repos: Record<string, unknown>; manifest?: unknown } } | null {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return null;
  const doc = json as { version?: unknown; repos?: unknown; manifest?: unknown };
  const repos = doc.repos;
  if (doc.version !== STATE_VERSION || typeof repos !== 'object' || repos === null || Array.isArray(repos)) return null;
  if (Object.getPrototypeOf(repos) !== Object.prototype) return null;
  return { success: true, data: { repos: repos as Record<string, unknown>, manifest: doc.manifest } };
}

/**
 * A copy a caller may change: a new map of repositories and new validators.
 * Entries are shared; every change replaces an entry (StateStore.update
 * works on a clone), none edits one in place.
 */
function copyOf(data: StateData): StateData {
  const copy: StateData = { version: data.version, repos: { ...data.repos } };
  if (data.manifest) copy.manifest = { ...data.manifest };
  return copy;
}
