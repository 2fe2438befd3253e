/**
 * What the last publish saw of each repository's ref files
 * (src/git/refs-signature.ts) and the fingerprint they held then, kept in
 * the published tree as `.refs-state.json` (a dotfile: never served, and
 * gc leaves it alone). Origin-local: a lost or unreadable record only means
 * one `git show-ref` for that repository on the next publish.
 *
 * A hook publish changes one record among thousands, so the records live in
 * a snapshot and a journal of the changes since:
 *
 *     .refs-state.json           {"version":2,"journal":"<id>"} then one record per line, sorted
 *     .refs-state.<id>.journal   one record (or {"path":...,"forget":true}) per line, appended
 *
 * A publish appends its changes to the journal (one fsynced write,
 * src/fs/journaled-file.ts) and rewrites the snapshot, under a new journal
 * id, only when the journal has grown past JOURNAL_LIMIT; a hook publish
 * looks up its repository's line in the snapshot without parsing the rest.
 * Every record is a plain fact ("ref files with this signature hold this
 * fingerprint"), so a record lost to a crash, or a torn last line
 * (skipped), costs a git process and nothing else. A last line without its
 * newline is still read when it is a whole record (journals once ended
 * so). Version 1 (one JSON document) is read, and replaced by the first
 * change.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isJournalId, JournaledFile } from '../fs/journaled-file.js';
import { isObjectId } from '../git/refname.js';

export const REFS_STATE = '.refs-state.json';

export interface KnownRefs {
  signature: string;
  fingerprint: string;
}

export interface RefsState {
  /** The records read: every one, or (when `complete` is false) those of the paths asked for. */
  known: Map<string, KnownRefs>;
  complete: boolean;
  /** The journal the snapshot names and its size now; null: none (version 1 or no snapshot). */
  journal: { id: string; bytes: number } | null;
}

/** Past this, the next change rewrites the snapshot instead of appending. */
const JOURNAL_LIMIT = 128 << 10;

const pairIn = (out: string) => new JournaledFile(join(out, REFS_STATE));

function recordOf(v: unknown): KnownRefs | null {
  const k = v as Partial<KnownRefs> | null;
  return typeof k?.signature === 'string' && typeof k.fingerprint === 'string' && isObjectId(k.fingerprint)
    ? { signature: k.signature, fingerprint: k.fingerprint }
    : null;
}

function recordLine(path: string, k: KnownRefs | null): string {
  return JSON.stringify(k ? { path, signature: k.signature, fingerprint: k.fingerprint } : { path, forget: true });
}

/** Applies one snapshot or journal line; a line that is not a whole record (torn by a crash) changes nothing. */
function applyLine(known: Map<string, KnownRefs>, line: string, wanted: Set<string> | null): void {
  if (line === '') return;
  let v: { path?: unknown; forget?: unknown };
  try {
    v = JSON.parse(line) as typeof v;
  } catch {
    return;
  }
  if (typeof v?.path !== 'string' || (wanted && !wanted.has(v.path))) return;
  if (v.forget === true) {
    known.delete(v.path);
    return;
  }
  const k = recordOf(v);
  if (k) known.set(v.path, k);
}

/**
 * The recorded ref files: all of them, or with `only` those of these
 * repositories alone (a hook publish: one line found in the snapshot's text,
 * not 10,000 parsed).
 */
export async function readRefsState(out: string, only?: readonly string[]): Promise<RefsState> {
  const known = new Map<string, KnownRefs>();
  let text: string;
  try {
    text = await readFile(join(out, REFS_STATE), 'utf8');
  } catch {
    return { known, complete: true, journal: null }; // none yet: every repository is asked with git
  }
  const firstLine = text.slice(0, text.indexOf('\n') + 1 || text.length);
  let header: { version?: unknown; journal?: unknown; repos?: unknown };
  try {
    header = JSON.parse(firstLine) as typeof header;
  } catch {
    header = {};
  }
  if (header?.version === 2 && isJournalId(header.journal)) {
    const wanted = only ? new Set(only) : null;
    if (wanted) {
      for (const path of wanted) {
        const at = text.indexOf(`\n{"path":${JSON.stringify(path)},`);
        if (at < 0) continue;
        const end = text.indexOf('\n', at + 1);
        applyLine(known, text.slice(at + 1, end < 0 ? text.length : end), wanted);
      }
    } else {
      for (const line of text.slice(firstLine.length).split('\n')) applyLine(known, line, null);
    }
    // none: no change since the snapshot
    const journal = await pairIn(out)
      .readJournal(header.journal)
      .catch(() => null);
    if (journal) {
      for (const line of journal.lines.toString('utf8').split('\n')) applyLine(known, line, wanted);
      applyLine(known, journal.cut.toString('utf8'), wanted); // not JSON when cut by a crash
    }
    return {
      known,
      complete: !wanted,
      journal: { id: header.journal, bytes: journal ? journal.end + journal.tail : 0 },
    };
  }
  try {
    const doc = JSON.parse(text) as { version?: unknown; repos?: unknown };
    if (doc.version === 1 && typeof doc.repos === 'object' && doc.repos !== null) {
      for (const [path, v] of Object.entries(doc.repos as Record<string, unknown>)) {
        const k = recordOf(v);
        if (k) known.set(path, k);
      }
    }
  } catch {
    /* unreadable: every repository is asked with git */
  }
  return { known, complete: true, journal: null };
}

const same = (a: KnownRefs | undefined, b: KnownRefs | undefined) =>
  a?.signature === b?.signature && a?.fingerprint === b?.fingerprint;

/**
 * Records `after`: for the repositories in `paths` (a publish of some), or
 * for all (`before` must then be complete). Nothing is written when
 * nothing changed.
 */
export async function writeRefsState(
  out: string,
  before: RefsState,
  after: Map<string, KnownRefs>,
  paths?: readonly string[],
): Promise<void> {
  const touched = paths ?? [...new Set([...before.known.keys(), ...after.keys()])];
  const changes = touched.filter((p) => !same(before.known.get(p), after.get(p)));
  if (changes.length === 0) return;
  const lines = changes.map((p) => recordLine(p, after.get(p) ?? null));
  if (before.journal && before.journal.bytes + lines.reduce((n, l) => n + l.length + 1, 0) < JOURNAL_LIMIT) {
    await pairIn(out).append(before.journal.id, lines);
    return;
  }
  let all: Map<string, KnownRefs>;
  if (paths === undefined) all = after;
  else {
    all = before.complete ? new Map(before.known) : (await readRefsState(out)).known;
    for (const p of changes) {
      const k = after.get(p);
      if (k) all.set(p, k);
      else all.delete(p);
    }
  }
  await writeSnapshot(out, all);
}

async function writeSnapshot(out: string, known: Map<string, KnownRefs>): Promise<void> {
  const id = JournaledFile.newId();
  const paths = [...known.keys()].sort();
  const text = [JSON.stringify({ version: 2, journal: id }), ...paths.map((p) => recordLine(p, known.get(p)!))];
  await pairIn(out).compact(text.join('\n') + '\n', id);
}
