/**
 * A file kept as a snapshot and a journal of the changes since, so that a
 * change to one record among thousands appends one line instead of
 * rewriting them all. Used by the replica's state (src/replica/state-file.ts)
 * and the origin's ref-file records (src/origin/refs-state.ts); each decides
 * what its snapshot and lines hold, this module how they reach the disk.
 *
 * - The snapshot (`NAME.json`) names its journal by an id; the journal is
 *   `NAME.ID.journal`. A journal belongs to the snapshot that names it: one
 *   no snapshot names is never read (a snapshot deleted by hand loses its
 *   changes with it, not to a stranger's).
 * - A change is whole lines appended with one write, then fsynced. A last
 *   line without its newline is a write a crash cut: readers ignore it and
 *   the next writer cuts it off (when it knows where the whole lines end) or
 *   ends it with a newline (when it does not; the line stays unreadable).
 * - Compaction writes a new snapshot, naming a new id, atomically and
 *   durably, and only then removes the other journals: a run killed
 *   anywhere leaves the old pair or the new one.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, writeFileAtomic } from './atomic.js';

/** The whole lines of a journal read from an offset on, and where they end. */
export interface JournalRead {
  /** Whole lines (each ending in a newline); empty when there is none. */
  lines: Buffer;
  /** Offset just past the last whole line. */
  end: number;
  /** Bytes after it: a line a crash cut. */
  tail: number;
  /** Those bytes. */
  cut: Buffer;
}

/** Where the whole lines of a journal end, as its last reader saw. */
export interface JournalEnd {
  end: number;
  tail: number;
}

export const isJournalId = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{1,64}$/.test(v);

export class JournaledFile {
  readonly dir: string;
  private readonly stem: string;

  constructor(
    /** Path of the snapshot, NAME.json. */
    readonly snapshot: string,
  ) {
    this.dir = dirname(snapshot);
    this.stem = `${basename(snapshot, '.json')}.`;
  }

  /** A fresh journal id. */
  static newId(): string {
    return randomBytes(8).toString('hex');
  }

  journalPath(id: string): string {
    return join(this.dir, `${this.stem}${id}.journal`);
  }

  private isJournalName(name: string): boolean {
    return name.startsWith(this.stem) && name.endsWith('.journal') && isJournalId(name.slice(this.stem.length, -8));
  }

  /** The journal's whole lines from `from` on; null: there is no such journal. */
  async readJournal(id: string, from = 0): Promise<JournalRead | null> {
    let bytes: Buffer;
    try {
      const fh = await open(this.journalPath(id), 'r');
      try {
        const size = (await fh.stat()).size;
        bytes = Buffer.alloc(Math.max(0, size - from));
        if (bytes.length) await fh.read(bytes, 0, bytes.length, from);
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const whole = bytes.lastIndexOf(0x0a) + 1;
    return {
      lines: bytes.subarray(0, whole),
      end: from + whole,
      tail: bytes.length - whole,
      cut: bytes.subarray(whole),
    };
  }

  /**
   * Appends `lines` (each a line without its newline) to journal `id` with
   * one write and syncs it; the caller holds the lock. With `at` (from the
   * last read) a cut last line is cut off; without, it is ended with a
   * newline. Returns the offset past the lines written.
   */
  async append(id: string, lines: readonly string[], at?: JournalEnd): Promise<number> {
    let text = lines.map((l) => l + '\n').join('');
    const fh = await open(this.journalPath(id), 'a+', 0o644);
    try {
      let start: number;
      if (at) {
        if (at.tail > 0) await fh.truncate(at.end);
        start = at.end;
      } else {
        start = (await fh.stat()).size;
        if (start > 0) {
          const last = Buffer.alloc(1);
          await fh.read(last, 0, 1, start - 1);
          // a cut line would swallow the first record: end it (it stays unreadable)
          if (last[0] !== 0x0a) text = '\n' + text;
        }
      }
      const bytes = Buffer.from(text, 'utf8');
      await fh.write(bytes, 0, bytes.length, null);
      await fh.sync();
      if (start === 0) await fsyncDir(this.dir); // a new file: its name must last too
      return start + bytes.length;
    } finally {
      await fh.close();
    }
  }

  /**
   * Replaces the snapshot (which names journal `id`) atomically and
   * durably, then removes every other journal, now read by nobody.
   */
  async compact(snapshot: string | Buffer, id: string): Promise<void> {
    await writeFileAtomic(this.snapshot, snapshot);
    await this.removeJournals(id);
  }

  /** Removes the journals of snapshots that are gone, all but `except`'s. */
  async removeJournals(except: string | null): Promise<void> {
    const keep = except === null ? null : basename(this.journalPath(except));
    for (const name of await readdir(this.dir).catch(() => [] as string[]))
      if (this.isJournalName(name) && name !== keep) await rm(join(this.dir, name), { force: true });
  }

  /**
   * Moves the snapshot and its journals aside as NAME.corrupt-STAMP, for
   * inspection. Returns every new path, and the journals that could not be
   * moved (they are harmless: no snapshot names them, and the next
   * compaction removes them), so that the caller can say where they went.
   */
  async moveAside(stamp: string): Promise<MovedAside> {
    const moved: string[] = [];
    const stuck: { path: string; error: string }[] = [];
    const aside = `${this.snapshot}.corrupt-${stamp}`;
    try {
      await rename(this.snapshot, aside);
      moved.push(aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (!this.isJournalName(name)) continue;
      const to = join(this.dir, `${name}.corrupt-${stamp}`);
      try {
        await rename(join(this.dir, name), to);
        moved.push(to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          stuck.push({ path: join(this.dir, name), error: (err as Error).message });
      }
    }
    return { snapshot: aside, moved, stuck };
  }
}

interface MovedAside {
  /** Where the snapshot went (also in `moved` when it existed). */
  snapshot: string;
  /** The new path of each file moved. */
  moved: string[];
  /** Journals left in place, with why. */
  stuck: { path: string; error: string }[];
}
