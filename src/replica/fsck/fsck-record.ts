/**
 * What fsck remembers between runs, per repository and object store, in
 * `<toplevel>/.bundlemirror/fsck.json`: when it first saw it, when it last
 * checked it and with what outcome, and how many repacks since the last
 * full one. `fsck --due` schedules from it.
 *
 * Kept apart from state.json: pull rewrites its entries whole after every
 * sync, and object stores are no manifest paths. Like state.json it is a
 * cache: a missing or unreadable file starts empty (every repository is
 * then first seen now and checked within one period). Changes are a
 * read-modify-write under a file lock, written atomically.
 */
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { writeFileAtomic } from '../../fs/atomic.js';
import { acquireLock } from '../../lock/lock.js';
import { stateDir } from '../paths.js';

const FSCK_RECORD_VERSION = 1;

const EntrySchema = z
  .object({
    /** ISO time fsck first saw it. */
    firstSeen: z.string().optional(),
    /** ISO time of its last check. */
    lastChecked: z.string().optional(),
    lastOutcome: z.enum(['ok', 'repaired', 'broken']).optional(),
    /** ISO time from which `fsck --due` checks it again. */
    nextDue: z.string().optional(),
    /** Repacks since the last full one (`full_repack_every`). */
    repacksSinceFull: z.number().int().nonnegative().optional(),
  })
  .loose();
export type FsckRecordEntry = z.infer<typeof EntrySchema>;

const FileSchema = z.object({
  version: z.literal(FSCK_RECORD_VERSION),
  repos: z.record(z.string(), EntrySchema),
});

export function fsckRecordFile(toplevel: string): string {
  return join(stateDir(toplevel), 'fsck.json');
}

/** Every entry, keyed by manifest path (a store: its path as fsck reports it). */
export async function readFsckRecord(
  toplevel: string,
  warn: (message: string) => void,
): Promise<Record<string, FsckRecordEntry>> {
  const file = fsckRecordFile(toplevel);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const checked = FileSchema.safeParse(parsed);
  if (checked.success) return checked.data.repos;
  const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(file, aside).catch(() => undefined);
  warn(`${file} is unreadable; moved aside to ${aside}; fsck schedules every repository afresh`);
  return {};
}

/** A change of one entry: the new entry from the current one, or null to drop it. */
export type FsckRecordChange = (current: FsckRecordEntry | undefined) => FsckRecordEntry | null;

/** Applies `changes` under the lock; the rest is kept as it is on disk. */
export async function updateFsckRecord(
  toplevel: string,
  changes: ReadonlyMap<string, FsckRecordChange>,
  warn: (message: string) => void,
): Promise<void> {
  if (changes.size === 0) return;
  const file = fsckRecordFile(toplevel);
  const release = await acquireLock({ path: file, what: `writer of ${file}`, wait: 20_000, staleMs: 10_000 });
  try {
    const repos = await readFsckRecord(toplevel, warn);
    for (const [path, change] of changes) {
      const next = change(repos[path]);
      if (next === null) delete repos[path];
      else repos[path] = next;
    }
    const sorted = Object.fromEntries(Object.entries(repos).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    await writeFileAtomic(file, JSON.stringify({ version: FSCK_RECORD_VERSION, repos: sorted }, null, 1) + '\n');
  } finally {
    await release();
  }
}
