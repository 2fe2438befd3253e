/**
 * The snapshot-and-journal pair both the replica's state and the origin's
 * ref-file records are kept in (src/fs/journaled-file.ts): appends are whole
 * lines, a line a crash cut is never read and never swallows the next
 * record, compaction leaves only the new snapshot's journal, and files in
 * the formats written before the pair had one home are still read.
 */
import test from 'ava';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JournaledFile } from '../src/fs/journaled-file.js';
import { readRefsState, REFS_STATE, writeRefsState } from '../src/origin/refs-state.js';
import { openState } from '../src/replica/state.js';
import { tempDir } from './support/repos.js';

const oid = (n: number) => n.toString(16).padStart(40, '0');

async function dir(t: import('ava').ExecutionContext): Promise<string> {
  const { dir, cleanup } = await tempDir('bm-journaled-');
  t.teardown(cleanup);
  return dir;
}

test('a cut last line is not read; a writer that knows where the lines end cuts it off', async (t) => {
  const d = await dir(t);
  const pair = new JournaledFile(join(d, 'x.json'));
  const end = await pair.append('ab12', ['{"a":1}', '{"a":2}']);
  await writeFile(pair.journalPath('ab12'), '{"a":1}\n{"a":2}\n{"a":', { flag: 'w' });
  const read = await pair.readJournal('ab12');
  t.is(read?.lines.toString(), '{"a":1}\n{"a":2}\n');
  t.is(read?.end, end);
  t.is(read?.cut.toString(), '{"a":');
  await pair.append('ab12', ['{"a":3}'], read!);
  t.is(await readFile(pair.journalPath('ab12'), 'utf8'), '{"a":1}\n{"a":2}\n{"a":3}\n');
  const from = await pair.readJournal('ab12', end);
  t.is(from?.lines.toString(), '{"a":3}\n', 'reading on from a saved offset');
  t.is(await pair.readJournal('cd34'), null, 'no such journal');
});

test('a writer that does not know where the lines end ends a cut line, so the next record stays whole', async (t) => {
  const d = await dir(t);
  const pair = new JournaledFile(join(d, 'x.json'));
  await writeFile(pair.journalPath('ab12'), '{"a":1}\n{"a":');
  await pair.append('ab12', ['{"a":2}']);
  t.is(await readFile(pair.journalPath('ab12'), 'utf8'), '{"a":1}\n{"a":\n{"a":2}\n');
});

test('compaction writes the snapshot and removes every journal but the one it names', async (t) => {
  const d = await dir(t);
  const pair = new JournaledFile(join(d, 'x.json'));
  await pair.append('ab12', ['{"a":1}']);
  await pair.append('cd34', ['{"a":1}']);
  await writeFile(join(d, 'y.ab12.journal'), 'another file');
  await pair.compact('{"journal":"ef56"}\n', 'ef56');
  await pair.append('ef56', ['{"a":2}']);
  t.deepEqual((await readdir(d)).sort(), ['x.ef56.journal', 'x.json', 'y.ab12.journal']);
  t.is(await readFile(join(d, 'x.json'), 'utf8'), '{"journal":"ef56"}\n');
});

test('moving aside reports every new path, and a journal it could not move instead of passing over it', async (t) => {
  const d = await dir(t);
  const pair = new JournaledFile(join(d, 'x.json'));
  await writeFile(pair.snapshot, '{"journal":"ab12"}');
  await pair.append('ab12', ['{"a":1}']);
  await pair.append('cd34', ['{"a":1}']);
  // a rename onto a directory that is not empty fails: a journal that cannot be moved
  await mkdir(join(d, 'x.cd34.journal.corrupt-T', 'in-the-way'), { recursive: true });
  const r = await pair.moveAside('T');
  t.is(r.snapshot, join(d, 'x.json.corrupt-T'));
  t.deepEqual(r.moved.sort(), [join(d, 'x.ab12.journal.corrupt-T'), join(d, 'x.json.corrupt-T')]);
  t.deepEqual(
    r.stuck.map((s) => s.path),
    [join(d, 'x.cd34.journal')],
  );
  t.true((await readdir(d)).includes('x.cd34.journal'), 'left where it was');
});

test('ref-file records written in the earlier journal layout (a newline before each append, none after) are read and appended to', async (t) => {
  const out = await dir(t);
  const id = '0123456789abcdef';
  const rec = (n: number) => JSON.stringify({ path: `/r${n}.git`, signature: `s${n}`, fingerprint: oid(n) });
  await writeFile(
    join(out, REFS_STATE),
    [JSON.stringify({ version: 2, journal: id }), rec(1), rec(2)].join('\n') + '\n',
  );
  await writeFile(join(out, `.refs-state.${id}.journal`), `\n${rec(3)}\n{"path":"/r2.git","forget":true}\n${rec(4)}`);
  const state = await readRefsState(out);
  t.deepEqual([...state.known.keys()].sort(), ['/r1.git', '/r3.git', '/r4.git']);
  t.deepEqual(
    state.known.get('/r4.git'),
    { signature: 's4', fingerprint: oid(4) },
    'the last line, without its newline',
  );
  await writeRefsState(out, state, new Map([['/r5.git', { signature: 's5', fingerprint: oid(5) }]]), ['/r5.git']);
  const again = await readRefsState(out);
  t.deepEqual([...again.known.keys()].sort(), ['/r1.git', '/r3.git', '/r4.git', '/r5.git']);
  t.is((await readRefsState(out, ['/r4.git'])).known.get('/r4.git')?.fingerprint, oid(4));
});

test('a replica state written in version 2 before the pair had one home is read, and the next change appends to its journal', async (t) => {
  const top = await dir(t);
  const bm = join(top, '.bundlemirror');
  await mkdir(bm, { recursive: true });
  const id = 'a1b2c3d4e5f60718';
  const entry = (n: number) => ({ fingerprint: oid(n) });
  await writeFile(
    join(bm, 'state.json'),
    JSON.stringify({ version: 2, journal: id, repos: { '/a.git': entry(1), '/b.git': entry(2) } }, null, 1) + '\n',
  );
  await writeFile(
    join(bm, `state.${id}.journal`),
    `${JSON.stringify({ repo: '/c.git', state: entry(3) })}\n${JSON.stringify({ repo: '/a.git', state: null })}\n{"repo":"/d.g`,
  );
  const store = await openState(top);
  const all = await store.all();
  t.deepEqual(Object.keys(all).sort(), ['/b.git', '/c.git']);
  t.is(all['/c.git']?.fingerprint, oid(3));
  await store.recordSuccess('/e.git', { fingerprint: oid(5) });
  const lines = (await readFile(join(bm, `state.${id}.journal`), 'utf8')).split('\n');
  t.is(lines.length, 4, 'two records, the cut line cut off, one appended');
  t.is(JSON.parse(lines[2]!).repo, '/e.git');
  t.deepEqual(Object.keys(await (await openState(top)).all()).sort(), ['/b.git', '/c.git', '/e.git']);
});
