/**
 * The origin's record of each repository's ref files (`.refs-state.json`
 * and its journal): a publish of one repository appends one line instead
 * of rewriting every record, lookups of a few read those alone, a crash
 * mid-append loses at most that line, and the file of the previous format
 * is read and replaced by the first change.
 */
import test from 'ava';
import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readRefsState, REFS_STATE, writeRefsState, type KnownRefs } from '../src/origin/refs-state.js';
import { tempDir } from './support/repos.js';

const oid = (n: number) => n.toString(16).padStart(40, '0');
const rec = (n: number): KnownRefs => ({ signature: `sig-${n} "quoted" \\ ${'\u00e9'}`, fingerprint: oid(n) });
const pathOf = (n: number) => `/g${n % 10}/r${String(n).padStart(5, '0')}.git`;

async function outDir(t: import('ava').ExecutionContext): Promise<string> {
  const { dir, cleanup } = await tempDir('bm-refs-state-');
  t.teardown(cleanup);
  return dir;
}

/** A tree whose records were written by a full publish of `n` repositories. */
async function recorded(t: import('ava').ExecutionContext, n: number): Promise<string> {
  const out = await outDir(t);
  const all = new Map(Array.from({ length: n }, (_, i) => [pathOf(i), rec(i)] as const));
  await writeRefsState(out, await readRefsState(out), all);
  return out;
}

const journals = async (out: string) => (await readdir(out)).filter((f) => f.endsWith('.journal')).sort();

test('a publish of one repository appends a line to the journal and leaves the snapshot as it was', async (t) => {
  const out = await recorded(t, 500);
  const snapshot = join(out, REFS_STATE);
  const before = await stat(snapshot);
  const bytesBefore = await readFile(snapshot);

  const one = [pathOf(7)];
  const state = await readRefsState(out, one);
  t.false(state.complete);
  t.deepEqual([...state.known], [[pathOf(7), rec(7)]], 'only the record asked for');
  await writeRefsState(out, state, new Map([[pathOf(7), rec(1007)]]), one);

  const after = await stat(snapshot);
  t.is(after.ino, before.ino);
  t.true((await readFile(snapshot)).equals(bytesBefore), 'snapshot untouched');
  t.is((await journals(out)).length, 1);
  const whole = await readRefsState(out);
  t.true(whole.complete);
  t.is(whole.known.size, 500);
  t.deepEqual(whole.known.get(pathOf(7)), rec(1007));
  t.deepEqual(whole.known.get(pathOf(8)), rec(8));
  t.deepEqual((await readRefsState(out, one)).known.get(pathOf(7)), rec(1007), 'a lookup sees the journal too');
});

test('a forgotten repository stays forgotten, and an unchanged record writes nothing', async (t) => {
  const out = await recorded(t, 20);
  const state = await readRefsState(out, [pathOf(3), pathOf(4)]);
  await writeRefsState(out, state, new Map([[pathOf(4), rec(4)]]), [pathOf(3), pathOf(4)]);
  const journal = join(out, (await journals(out))[0]!);
  const lines = (await readFile(journal, 'utf8')).split('\n').filter(Boolean);
  t.is(lines.length, 1, 'one change: the forgotten record');
  t.false((await readRefsState(out)).known.has(pathOf(3)));
  t.false((await readRefsState(out, [pathOf(3)])).known.has(pathOf(3)));

  const again = await readRefsState(out, [pathOf(4)]);
  await writeRefsState(out, again, new Map([[pathOf(4), rec(4)]]), [pathOf(4)]);
  t.is((await readFile(journal, 'utf8')).split('\n').filter(Boolean).length, 1);
});

test('a line torn by a crash is skipped, and the next append is whole', async (t) => {
  const out = await recorded(t, 10);
  const s1 = await readRefsState(out, [pathOf(1)]);
  await writeRefsState(out, s1, new Map([[pathOf(1), rec(101)]]), [pathOf(1)]);
  const journal = join(out, (await journals(out))[0]!);
  // what a crash in the middle of the next append leaves
  await appendFile(journal, `\n{"path":"${pathOf(2)}","signature":"sig-2`);
  const torn = await readRefsState(out);
  t.deepEqual(torn.known.get(pathOf(1)), rec(101));
  t.deepEqual(torn.known.get(pathOf(2)), rec(2), 'the torn line changed nothing');

  const s2 = await readRefsState(out, [pathOf(5)]);
  await writeRefsState(out, s2, new Map([[pathOf(5), rec(105)]]), [pathOf(5)]);
  const whole = await readRefsState(out);
  t.deepEqual(whole.known.get(pathOf(5)), rec(105));
  t.deepEqual(whole.known.get(pathOf(2)), rec(2));
  t.is(whole.known.size, 10);
});

test('past its limit the journal is folded into a new snapshot, and the old journal is removed', async (t) => {
  const out = await recorded(t, 50);
  const expected = new Map((await readRefsState(out)).known);
  const first = await journals(out);
  let rewrites = 0;
  let lastSnapshot = (await stat(join(out, REFS_STATE))).ino;
  for (let i = 0; i < 1500; i++) {
    const p = pathOf(i % 50);
    const state = await readRefsState(out, [p]);
    expected.set(p, rec(10_000 + i));
    await writeRefsState(out, state, new Map([[p, rec(10_000 + i)]]), [p]);
    const ino = (await stat(join(out, REFS_STATE))).ino;
    if (ino !== lastSnapshot) rewrites += 1;
    lastSnapshot = ino;
  }
  t.true(rewrites >= 1, 'the snapshot was rewritten');
  t.true(rewrites < 20, `only when the journal was full (${rewrites} rewrites)`);
  t.true((await journals(out)).length <= 1, 'one journal at most');
  t.notDeepEqual(await journals(out), first);
  t.deepEqual(new Map((await readRefsState(out)).known), expected);
});

test('the previous format is read, and the first change replaces it with a snapshot', async (t) => {
  const out = await outDir(t);
  const repos = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [pathOf(i), rec(i)]));
  await writeFile(join(out, REFS_STATE), JSON.stringify({ version: 1, repos }) + '\n');
  const old = await readRefsState(out, [pathOf(2)]);
  t.deepEqual(old.known.get(pathOf(2)), rec(2));
  t.is(old.journal, null);

  await writeRefsState(out, old, new Map([[pathOf(2), rec(202)]]), [pathOf(2)]);
  const text = await readFile(join(out, REFS_STATE), 'utf8');
  t.is((JSON.parse(text.split('\n')[0]!) as { version: number }).version, 2);
  const now = await readRefsState(out);
  t.is(now.known.size, 5);
  t.deepEqual(now.known.get(pathOf(2)), rec(202));
  t.deepEqual(now.known.get(pathOf(4)), rec(4));
});

test('an unreadable record file, or a journal no snapshot names, is no record at all', async (t) => {
  const out = await recorded(t, 5);
  await writeFile(
    join(out, '.refs-state.0123456789abcdef.journal'),
    `${JSON.stringify({ path: pathOf(1), forget: true })}\n`,
  );
  t.true((await readRefsState(out)).known.has(pathOf(1)), 'a journal of another snapshot is ignored');
  await writeFile(join(out, REFS_STATE), 'not json\n');
  t.is((await readRefsState(out)).known.size, 0);
  t.is((await readRefsState(out, [pathOf(1)])).known.size, 0);
});
