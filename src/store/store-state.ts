/**
 * What the store holds, as this origin uploaded it: one record per object
 * (size; for documents also mtime and sha256, to tell a rewritten file from
 * an unchanged one without hashing it again) and the unfinished multipart
 * uploads with the parts already sent. Kept in the local tree beside the
 * other dotfiles (never uploaded): `.store-state.json`, a snapshot written
 * at the end of each run, and `.store-state.log`, one JSON line appended per
 * finished upload, so a publish killed mid-way loses nothing it finished.
 */
import { appendFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import { BundlemirrorError } from '../errors.js';

const SNAPSHOT = '.store-state.json';
const LOG = '.store-state.log';

export interface StoredObject {
  size: number;
  mtimeMs?: number;
  sha256?: string;
}

export interface PendingUpload {
  uploadId: string;
  size: number;
  partSize: number;
  parts: { partNumber: number; etag: string }[];
}

type LogLine = { o: string; v: StoredObject | null } | { u: string; v: PendingUpload | null };

export class StoreState {
  readonly objects = new Map<string, StoredObject>();
  readonly uploads = new Map<string, PendingUpload>();
  private dirty = false;

  private constructor(
    private readonly tree: string,
    private readonly url: string,
  ) {}

  /** Refuses a state directory that another store URL uses: its records would skip uploads the new store lacks. */
  static async load(tree: string, url: string): Promise<StoreState> {
    const state = new StoreState(tree, url);
    let snapshot: {
      version?: number;
      url?: string;
      objects?: Record<string, StoredObject>;
      uploads?: Record<string, PendingUpload>;
    } | null = null;
    try {
      snapshot = JSON.parse(await readFile(join(tree, SNAPSHOT), 'utf8'));
    } catch {
      /* first run, or unreadable: every object not recorded is looked up (HEAD) before an upload */
    }
    if (snapshot?.version === 1) {
      if (snapshot.url !== url)
        throw new BundlemirrorError('E_USAGE', `${tree} holds the state of ${snapshot.url}, not ${url}`, {
          hint: 'give each store URL its own --state directory',
        });
      for (const [k, v] of Object.entries(snapshot.objects ?? {})) state.objects.set(k, v);
      for (const [k, v] of Object.entries(snapshot.uploads ?? {})) state.uploads.set(k, v);
    }
    let log = '';
    try {
      log = await readFile(join(tree, LOG), 'utf8');
    } catch {
      /* nothing since the snapshot */
    }
    for (const line of log.split('\n')) {
      if (!line) continue;
      let rec: LogLine;
      try {
        rec = JSON.parse(line) as LogLine;
      } catch {
        continue; // the last line of a process killed mid-write
      }
      state.dirty = true;
      if ('o' in rec) {
        if (rec.v) state.objects.set(rec.o, rec.v);
        else state.objects.delete(rec.o);
      } else if (rec.v) state.uploads.set(rec.u, rec.v);
      else state.uploads.delete(rec.u);
    }
    return state;
  }

  async record(rel: string, v: StoredObject | null): Promise<void> {
    if (v) this.objects.set(rel, v);
    else this.objects.delete(rel);
    await this.append({ o: rel, v });
  }

  async recordUpload(rel: string, v: PendingUpload | null): Promise<void> {
    if (v) this.uploads.set(rel, v);
    else this.uploads.delete(rel);
    await this.append({ u: rel, v });
  }

  /** Notes a change that needs no log line (a document touched but unchanged): saved with the snapshot. */
  touch(rel: string, v: StoredObject): void {
    this.objects.set(rel, v);
    this.dirty = true;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    const sorted = <T>(m: Map<string, T>) => Object.fromEntries([...m].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    await writeFileAtomic(
      join(this.tree, SNAPSHOT),
      JSON.stringify({ version: 1, url: this.url, objects: sorted(this.objects), uploads: sorted(this.uploads) }) +
        '\n',
    );
    await rm(join(this.tree, LOG), { force: true });
    this.dirty = false;
  }

  private async append(rec: LogLine): Promise<void> {
    this.dirty = true;
    await appendFile(join(this.tree, LOG), JSON.stringify(rec) + '\n');
  }
}
