/**
 * The replica's state on disk: a snapshot and a journal of the changes made
 * since, so that recording one repository appends one line instead of
 * rewriting the state of the whole collection (2.6 MB for 10,000
 * repositories, three times a poll).
 *
 * - `state.json`: `{"version": 2, "journal": ID, "repos": {...},
 *   "manifest": {...}}`, replaced atomically and durably (src/fs/atomic.ts).
 * - `state.ID.journal`: one JSON record a line, appended and fsynced:
 *   `{"repo": PATH, "state": ENTRY}` (null: forgotten) or
 *   `{"manifest": VALIDATORS}`. A record replaces what came before, so
 *   reading one twice changes nothing.
 *
 * How the pair reaches the disk (fsynced appends, a cut last line,
 * compaction under a new ID) is src/fs/journaled-file.ts. Version 1
 * (everything in state.json) is read as it is and rewritten as version 2
 * by the first change.
 *
 * A malformed entry is dropped and re-verified; a file that cannot be read
 * at all is moved aside by a writer holding the lock (state.ts) and the
 * state starts empty.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { isJournalId, JournaledFile } from '../fs/journaled-file.js';
import { dirname } from 'node:path';
import { BundlemirrorError, HINT } from '../errors.js';
import { safeJson } from '../format/untrusted.js';
import { fastManifestValidators, fastRepoState } from './state-validate.js';
import type { ManifestValidators, RepoState } from './state-schema.js';

export type { ManifestValidators, RepoState } from './state-schema.js';

export const STATE_FILE = 'state.json';
export const STATE_VERSION = 2;
/** Everything in state.json, rewritten by every change; still read. */
const LEGACY_VERSION = 1;

export interface StateData {
  repos: Record<string, RepoState>;
  manifest?: ManifestValidators;
}

/** One change, as a journal line holds it. */
export type StateRecord = { repo: string; state: RepoState | null } | { manifest: ManifestValidators };

/** What was read, and where reading stopped: the next read starts there when the snapshot is the same file. */
export interface LoadedState {
  data: StateData;
  /** Identity of the snapshot read; null: there was none. */
  snapshot: string | null;
  /** The journal the snapshot names; null: none (no snapshot, or version 1), so the next change writes a snapshot. */
  journal: string | null;
  /** Bytes of the journal read (whole lines). */
  offset: number;
  /** Bytes after them: a cut last line. */
  tail: number;
  /** Size of the snapshot, for deciding when to compact. */
  snapshotBytes: number;
}

/** What could not be read; quarantine() moves it aside. */
export class UnreadableState extends Error {}

export class StateFiles {
  private readonly pair: JournaledFile;

  constructor(
    /** Path of state.json. */
    readonly file: string,
    private readonly warn: (message: string) => void,
  ) {
    this.pair = new JournaledFile(file);
  }

  /**
   * Reads the state, starting from `known` when the snapshot is still the
   * same file (only the journal's new lines are read then). `known.data` is
   * changed in place unless `shared` (callers hold it): then new lines go
   * into a copy. Throws UnreadableState.
   */
  async load(known: LoadedState | null, shared = false): Promise<LoadedState> {
    // a compaction between reading the snapshot and its journal removes the journal: read again
    for (let attempt = 0; ; attempt++) {
      const loaded = await this.loadOnce(known, shared);
      if (loaded) return loaded;
      known = null;
      if (attempt >= 20) throw new UnreadableState('its journal keeps disappearing while it is read');
    }
  }

  private async loadOnce(known: LoadedState | null, shared: boolean): Promise<LoadedState | null> {
    let fh: FileHandle;
    try {
      fh = await open(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return { data: { repos: {} }, snapshot: null, journal: null, offset: 0, tail: 0, snapshotBytes: 0 };
      throw err;
    }
    let loaded: LoadedState;
    try {
      const st = await fh.stat();
      const identity = identityOf(st);
      if (known && known.snapshot === identity) loaded = known;
      else {
        const parsed = await this.parseSnapshot(await fh.readFile());
        loaded = { ...parsed, snapshot: identity, offset: 0, tail: 0, snapshotBytes: st.size };
      }
    } finally {
      await fh.close();
    }
    if (loaded.journal === null) return loaded;
    const read = await this.pair.readJournal(loaded.journal, loaded.offset);
    if (!read) {
      // no journal yet, or compacted away under us: the snapshot tells which
      const now = await stat(this.file).catch(() => null);
      const same = now && identityOf(now) === loaded.snapshot;
      return same ? { ...loaded, tail: 0 } : null;
    }
    if (read.lines.length > 0) {
      if (shared && loaded === known) loaded = { ...loaded, data: copyOf(loaded.data) };
      await this.replay(loaded.data, read.lines);
    }
    return { ...loaded, offset: read.end, tail: read.tail };
  }

  private async parseSnapshot(bytes: Buffer): Promise<Pick<LoadedState, 'data' | 'journal'>> {
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new UnreadableState(`not valid JSON (${(err as Error).message})`);
    }
    const doc = (typeof json === 'object' && json !== null && !Array.isArray(json) ? json : {}) as Record<
      string,
      unknown
    >;
    const { version, repos, journal } = doc;
    const known = version === STATE_VERSION ? isJournalId(journal) : version === LEGACY_VERSION;
    if (!known || typeof repos !== 'object' || repos === null || Array.isArray(repos)) {
      throw new UnreadableState(
        version !== undefined && version !== STATE_VERSION && version !== LEGACY_VERSION
          ? `version ${String(version)}, this bundlemirror reads versions ${LEGACY_VERSION} and ${STATE_VERSION}`
          : 'not a state file',
      );
    }
    const table = repos as Record<string, unknown>;
    const paths = Object.keys(table);
    // the table as read, while every entry is accepted as it is (nearly always: we wrote them); a copy from the first that is not
    let copy: Record<string, RepoState> | null = null;
    const dropped: string[] = [];
    for (let i = 0; i < paths.length; i += 1) {
      const path = paths[i]!;
      const entry = table[path];
      // "__proto__" is not a repository path; assigning it would replace the map's prototype
      const state = path === '__proto__' ? null : (fastRepoState(entry) ?? (await schemaRepoState(entry)));
      if ((state === null || state !== entry) && copy === null) {
        copy = {};
        for (const earlier of paths.slice(0, i)) copy[earlier] = table[earlier] as RepoState;
      }
      if (state && copy) copy[path] = state;
      else if (!state && path !== '__proto__') dropped.push(path);
    }
    const data: StateData = { repos: copy ?? (table as Record<string, RepoState>) };
    this.warnDropped(dropped);
    const validators = fastManifestValidators(doc.manifest) ?? (await schemaValidators(doc.manifest));
    if (validators) data.manifest = validators;
    return { data, journal: version === STATE_VERSION ? (journal as string) : null };
  }

  private async replay(data: StateData, bytes: Buffer): Promise<void> {
    const dropped: string[] = [];
    for (const line of bytes.toString('utf8').split('\n')) {
      if (line === '') continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (err) {
        throw new UnreadableState(`a line of its journal is not valid JSON (${(err as Error).message})`);
      }
      const r = (typeof rec === 'object' && rec !== null ? rec : {}) as Record<string, unknown>;
      if (typeof r.repo === 'string') {
        if (r.repo === '__proto__') continue;
        if (r.state === null) delete data.repos[r.repo];
        else {
          const state = fastRepoState(r.state) ?? (await schemaRepoState(r.state));
          if (state) data.repos[r.repo] = state;
          else {
            delete data.repos[r.repo];
            dropped.push(r.repo);
          }
        }
      } else if ('manifest' in r) {
        const validators = fastManifestValidators(r.manifest) ?? (await schemaValidators(r.manifest));
        if (validators) data.manifest = validators;
        else delete data.manifest;
      } else {
        throw new UnreadableState('a line of its journal is not a record');
      }
    }
    this.warnDropped(dropped);
  }

  private warnDropped(dropped: string[]): void {
    if (dropped.length === 0) return;
    this.warn(
      `${this.file}: ignoring malformed state of ${dropped.length} repositor${dropped.length === 1 ? 'y' : 'ies'} (${dropped.slice(0, 3).join(', ')}${dropped.length > 3 ? ', ...' : ''}); they will be re-verified`,
    );
  }

  /** Appends records to the journal of `loaded` and syncs them (the caller holds the lock). Returns the new offset. */
  async append(loaded: LoadedState & { journal: string }, records: StateRecord[]): Promise<number> {
    return this.pair.append(
      loaded.journal,
      records.map((r) => safeJson(r)),
      { end: loaded.offset, tail: loaded.tail },
    );
  }

  /**
   * Writes `data` as a new snapshot with a new, empty journal, then removes
   * every other journal (the caller holds the lock). Returns what a load
   * right after would return.
   */
  async compact(data: StateData): Promise<LoadedState> {
    const journal = JournaledFile.newId();
    const doc: Record<string, unknown> = { version: STATE_VERSION, journal, repos: data.repos };
    if (data.manifest) doc.manifest = data.manifest;
    const bytes = Buffer.from(safeJson(doc, 1) + '\n', 'utf8');
    await this.pair.compact(bytes, journal);
    const st = await stat(this.file);
    return {
      data,
      snapshot: identityOf(st),
      journal,
      offset: 0,
      tail: 0,
      snapshotBytes: st.size,
    };
  }

  /** Moves an unreadable snapshot and its journals aside, for inspection; the state starts empty (the caller holds the lock). */
  async quarantine(why: string, at: Date): Promise<void> {
    const stamp = at.toISOString().replace(/[:.]/g, '-');
    let aside: Awaited<ReturnType<JournaledFile['moveAside']>>;
    try {
      aside = await this.pair.moveAside(stamp);
    } catch (err) {
      throw this.notMovedAside(why, err);
    }
    const { moved, stuck } = aside;
    const where = moved.length ? `moved ${moved.join(', ')} aside` : 'nothing left to move aside';
    const left = stuck.map((s) => `; could not move ${s.path} (${s.error}): no state names it, delete it by hand`);
    this.warn(
      `${this.file}: ${why}; ${where}${left.join('')}; starting with empty state: the next pull verifies every repository again (nothing is downloaded for those already in sync)` +
        `${HINT}nothing to repair; keep the moved files to see what went wrong (a full disk, a bad disk, a file edited by hand) and delete them afterwards`,
    );
  }

  /**
   * The snapshot could not be renamed (the name beside it taken by a
   * directory, a read-only or failing disk): nothing was moved, so the
   * unreadable file and its journals stay where they are, and nothing can
   * be recorded until someone moves them.
   */
  private notMovedAside(why: string, err: unknown): BundlemirrorError {
    const e = err as NodeJS.ErrnoException & { dest?: string };
    // the state lives in <toplevel>/.bundlemirror/
    const toplevel = dirname(dirname(this.file));
    const target = e.dest ? ` to ${e.dest}` : '';
    return new BundlemirrorError(
      'E_DISK',
      `the replica state of toplevel ${toplevel} cannot be read (${why}) and ${this.file} could not be moved aside${target}: ${e.code ?? e.message}`,
      {
        hint: `nothing was moved or deleted; move ${this.file} out of the way yourself${e.dest ? ` (or remove what is at ${e.dest})` : ''} and rerun: the next pull starts with empty state and verifies every repository again`,
        cause: err,
      },
    );
  }
}

/** Which file a snapshot is, and whether it changed since: a compaction renames a new file over it. */
const identityOf = (st: Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

/** A copy whose map of repositories may change (entries are replaced, never edited, so they are shared). */
export function copyOf(data: StateData): StateData {
  const copy: StateData = { repos: { ...data.repos } };
  if (data.manifest) copy.manifest = data.manifest;
  return copy;
}

/** The zod schemas, loaded the first time a hand-written check refuses something. */
export const stateSchemas = (): Promise<typeof import('./state-schema.js')> => import('./state-schema.js');

/** zod's verdict on an entry the hand-written check refused. */
async function schemaRepoState(entry: unknown): Promise<RepoState | null> {
  const parsed = (await stateSchemas()).RepoStateSchema.safeParse(entry);
  return parsed.success ? parsed.data : null;
}

async function schemaValidators(value: unknown): Promise<ManifestValidators | null> {
  if (value === undefined) return null;
  const parsed = (await stateSchemas()).ManifestValidatorsSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}
