/**
 * The state on disk as a snapshot and a journal (src/replica/state-file.ts):
 * one change appends a line, a cut line or a killed compaction loses
 * nothing that was recorded, and a version 1 state.json (everything in one
 * file) keeps working after an upgrade.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { appendFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBundlemirrorError, type BundlemirrorError } from '../src/errors.js';
import { openState } from '../src/replica/state.js';
import { tempDir } from './support/repos.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const fp = (n: number): string => n.toString(16).padStart(40, '0');

async function stateDir(t: import('ava').ExecutionContext): Promise<string> {
  const { dir, cleanup } = await tempDir('bm-journal-');
  t.teardown(cleanup);
  return dir;
}

const bmDir = (top: string) => join(top, '.bundlemirror');
const journals = async (top: string) => (await readdir(bmDir(top))).filter((n) => n.endsWith('.journal')).sort();

/** A state with /a.git and /b.git recorded, its journal's path, and the warnings stores opened with `warn` give. */
async function twoRecorded(t: import('ava').ExecutionContext) {
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const top = await stateDir(t);
  const store = await openState(top, { warn });
  await store.recordSuccess('/a.git', { fingerprint: fp(1) });
  await store.recordSuccess('/b.git', { fingerprint: fp(2) });
  const [name] = await journals(top);
  t.truthy(name);
  return { top, store, warnings, warn, journal: join(bmDir(top), name!) };
}

test('recording one repository among many appends one line to the journal and leaves state.json as it was', async (t) => {
  const top = await stateDir(t);
  const store = await openState(top);
  // 300 records of ~160 bytes stay below the 64 KiB at which a journal is folded into the snapshot
  await Promise.all(Array.from({ length: 300 }, (_, i) => store.recordSuccess(`/r/${i}.git`, { fingerprint: fp(i) })));
  const before = await readFile(store.file);
  const [journal] = await journals(top);
  const lines = journal ? (await readFile(join(bmDir(top), journal), 'utf8')).split('\n').length : 1;
  // another store (another process): nothing of the first one's memory helps it
  const other = await openState(top);
  await other.recordSuccess('/r/7.git', { fingerprint: fp(7000) });
  t.deepEqual(await readFile(store.file), before, 'the snapshot is not rewritten');
  const [after] = await journals(top);
  t.truthy(after);
  t.is((await readFile(join(bmDir(top), after!), 'utf8')).split('\n').length, lines + 1, 'one line more');
  const all = await (await openState(top)).all();
  t.is(Object.keys(all).length, 300);
  t.is(all['/r/7.git']?.fingerprint, fp(7000));
  t.is(all['/r/8.git']?.fingerprint, fp(8));
  t.is(JSON.parse(before.toString('utf8')).journal, after!.split('.')[1], 'the snapshot names its journal');
});

test('a long journal is folded into a new snapshot, the old journal removed, nothing lost', async (t) => {
  const top = await stateDir(t);
  const store = await openState(top);
  await store.recordSuccess('/first.git', { fingerprint: fp(1) });
  const id = JSON.parse(await readFile(store.file, 'utf8')).journal as string;
  // each record is a line of ~150 bytes: some 450 of them pass the 64 KiB a journal may reach
  for (let i = 0; i < 600; i++) await store.recordSuccess(`/r/${i}.git`, { fingerprint: fp(i), head: 'x'.repeat(20) });
  const snapshot = JSON.parse(await readFile(store.file, 'utf8')) as { version: number; journal: string };
  t.is(snapshot.version, 2);
  t.not(snapshot.journal, id, 'a new snapshot, with a new journal');
  t.deepEqual(
    (await journals(top)).filter((n) => n !== `state.${snapshot.journal}.journal`),
    [],
    'the old journal is gone',
  );
  const all = await (await openState(top)).all();
  t.is(Object.keys(all).length, 601);
  t.is(all['/r/599.git']?.fingerprint, fp(599));
});

test('a journal line cut by a killed writer is ignored by readers and cut off by the next writer', async (t) => {
  const { top, warnings, warn, journal } = await twoRecorded(t);
  // the writer was killed after part of its line reached the disk
  await appendFile(journal, '{"repo":"/a.git","state":{"fingerprint":"ffff');
  const reader = await openState(top, { warn });
  t.is((await reader.get('/a.git'))?.fingerprint, fp(1), 'the cut record does not count');
  await reader.recordSuccess('/c.git', { fingerprint: fp(3) });
  const text = await readFile(journal, 'utf8');
  t.true(text.endsWith('\n'));
  t.notRegex(text, /ffff/, 'the cut line is gone');
  for (const line of text.trim().split('\n')) t.notThrows(() => JSON.parse(line));
  const all = await (await openState(top)).all();
  t.deepEqual(Object.fromEntries(Object.entries(all).map(([p, s]) => [p, s.fingerprint])), {
    '/a.git': fp(1),
    '/b.git': fp(2),
    '/c.git': fp(3),
  });
  t.deepEqual(warnings, []);
});

test('a compaction killed after its snapshot and before removing the old journal: the old journal is not read, and is removed later', async (t) => {
  const top = await stateDir(t);
  const store = await openState(top);
  await store.recordSuccess('/a.git', { fingerprint: fp(1) });
  await store.recordSuccess('/a.git', { fingerprint: fp(2) });
  // the old pair: its snapshot says fp(1), its journal fp(2); the new snapshot (what compaction writes) says fp(2)
  const [old] = await journals(top);
  const stale = `${(await readFile(join(bmDir(top), old!), 'utf8')).trim()}\n{"repo":"/a.git","state":{"fingerprint":"${fp(99)}"}}\n`;
  const snapshot = JSON.parse(await readFile(store.file, 'utf8')) as Record<string, unknown>;
  await writeFile(
    store.file,
    JSON.stringify({ ...snapshot, journal: 'abcdef0123456789', repos: { '/a.git': { fingerprint: fp(2) } } }),
  );
  await writeFile(join(bmDir(top), old!), stale);
  const fresh = await openState(top);
  t.is((await fresh.get('/a.git'))?.fingerprint, fp(2), 'a journal the snapshot does not name is not read');
  // the next compaction (forced here by a snapshot with no journal yet) removes it
  for (let i = 0; i < 600; i++) await fresh.recordSuccess(`/r/${i}.git`, { fingerprint: fp(i), head: 'x'.repeat(20) });
  t.false((await journals(top)).includes(old!));
  t.is((await (await openState(top)).get('/a.git'))?.fingerprint, fp(2));
});

test('a complete journal line that is not a record makes the state unreadable: a writer moves snapshot and journal aside and starts empty', async (t) => {
  const { top, warnings, warn, journal } = await twoRecorded(t);
  await appendFile(journal, 'garbage that a disk returned\n');
  const reader = await openState(top, { warn });
  t.deepEqual(await reader.all(), {}, 'a reader treats it as empty for now');
  await reader.recordSuccess('/c.git', { fingerprint: fp(3) });
  const names = await readdir(bmDir(top));
  const aside = names.filter((n) => n.startsWith('state.json.corrupt-'));
  const asideJournals = names.filter((n) => /^state\.[0-9a-f]+\.journal\.corrupt-/.test(n));
  t.is(aside.length, 1);
  t.is(asideJournals.length, 1, 'its journal too');
  t.deepEqual(Object.keys(await (await openState(top)).all()), ['/c.git']);
  t.true(
    warnings.some((w) => [...aside, ...asideJournals].every((n) => w.includes(join(bmDir(top), n)))),
    'one warning names where the snapshot and its journal went',
  );
});

test('an unreadable state that cannot be moved aside fails with E_DISK naming the state file and the toplevel, and moves nothing', async (t) => {
  const { top, warn, journal } = await twoRecorded(t);
  await appendFile(journal, 'garbage that a disk returned\n');
  const at = new Date('2026-12-01T12:00:00.000Z');
  const store = await openState(top, { warn, now: () => at });
  const snapshot = join(bmDir(top), 'state.json');
  // the name the snapshot would move to is a directory with something in it: rename fails even as root
  const blocker = `${snapshot}.corrupt-${at.toISOString().replace(/[:.]/g, '-')}`;
  await mkdir(blocker);
  await writeFile(join(blocker, 'in-the-way'), '');
  const before = { snapshot: await readFile(snapshot), journal: await readFile(journal) };
  const err = await t.throwsAsync(store.recordSuccess('/c.git', { fingerprint: fp(3) }));
  t.true(isBundlemirrorError(err));
  t.is((err as BundlemirrorError).code, 'E_DISK');
  const said = (err as BundlemirrorError).describe();
  t.true(said.includes(snapshot) && said.includes(top), 'it names the state file and the toplevel');
  t.truthy((err as BundlemirrorError).hint, 'it says what to do');
  t.deepEqual(await readFile(snapshot), before.snapshot, 'the unreadable snapshot stays where it was');
  t.deepEqual(await readFile(journal), before.journal, 'its journal too');
  t.deepEqual(
    (await readdir(bmDir(top))).filter((n) => n.includes('.corrupt-')),
    [blocker.slice(bmDir(top).length + 1)],
    'nothing was moved aside',
  );
  // once the way is clear, the next write moves it aside and records
  await rm(blocker, { recursive: true });
  await store.recordSuccess('/c.git', { fingerprint: fp(3) });
  t.deepEqual(Object.keys(await (await openState(top)).all()), ['/c.git']);
});

test('a malformed journal record drops that repository only (it is verified again); the others stay', async (t) => {
  const { top, warnings, warn, journal } = await twoRecorded(t);
  await appendFile(journal, '{"repo":"/a.git","state":{"fingerprint":42}}\n');
  const all = await (await openState(top, { warn })).all();
  t.deepEqual(Object.keys(all), ['/b.git']);
  t.true(warnings.some((w) => w.includes('/a.git')));
});

test('a version 1 state.json (the whole state in one file) is read as it is and rewritten as version 2 by the first change', async (t) => {
  const top = await stateDir(t);
  const validators = {
    url: 'https://o/manifest.js.gz',
    etag: '"abc"',
    lastModified: null,
    fetchedAt: '2026-11-03T10:00:01Z',
    configMtimeMs: 5,
  };
  const repos = Object.fromEntries(
    Array.from({ length: 50 }, (_, i) => [
      `/r/${i}.git`,
      { fingerprint: fp(i), head: 'ref: refs/heads/main', description: null, owner: null, symlinks: [] },
    ]),
  );
  const store = await openState(top);
  await writeFile(store.file, JSON.stringify({ version: 1, repos, manifest: validators }, null, 1));
  // a stray journal from some earlier life is no part of a version 1 file
  await writeFile(
    join(bmDir(top), 'state.0123abcd.journal'),
    `{"repo":"/r/1.git","state":{"fingerprint":"${fp(77)}"}}\n`,
  );
  const reader = await openState(top);
  t.deepEqual(await reader.all(), repos);
  t.deepEqual(await reader.manifestValidators(validators.url), validators);
  await reader.recordSuccess('/r/3.git', { fingerprint: fp(300) });
  const onDisk = JSON.parse(await readFile(store.file, 'utf8')) as { version: number; journal: string };
  t.is(onDisk.version, 2);
  t.deepEqual(await journals(top), [], 'the stray journal is removed; the new snapshot has no journal yet');
  const after = await (await openState(top)).all();
  t.is(Object.keys(after).length, 50);
  t.is(after['/r/1.git']?.fingerprint, fp(1));
  t.is(after['/r/3.git']?.fingerprint, fp(300));
  t.deepEqual(await (await openState(top)).manifestValidators(validators.url), validators);
});

test('a writer killed with -9 at any moment of a long series of changes: every change it finished is there, the state reads whole', async (t) => {
  const top = await stateDir(t);
  await (await openState(top)).recordSuccess('/before.git', { fingerprint: fp(1) });
  const child = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--input-type=module',
      '-e',
      `
      const { openState } = await import(${JSON.stringify(join(ROOT, 'src/replica/state.ts'))});
      const store = await openState(${JSON.stringify(top)});
      for (let i = 0; i < 5000; i++) {
        await store.recordSuccess('/r/' + i + '.git', { fingerprint: i.toString(16).padStart(40, '0'), head: 'x'.repeat(40) });
        process.stdout.write(i + '\\n');
      }
    `,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  // past at least one compaction (a record is ~170 bytes; the journal is folded at 64 KiB)
  const killAt = 450 + Math.floor(Math.random() * 300);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the writer got to ${out.split('\n').at(-2)} only`)), 60_000);
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.split('\n').length > killAt) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.on('exit', r)));
  const done = out.split('\n').filter(Boolean).map(Number);
  const last = Math.max(...done);
  const warnings: string[] = [];
  const all = await (await openState(top, { warn: (m) => warnings.push(m) })).all();
  t.deepEqual(warnings, []);
  t.is(all['/before.git']?.fingerprint, fp(1));
  for (let i = 0; i <= last; i++) t.is(all[`/r/${i}.git`]?.fingerprint, fp(i), `record ${i} was finished`);
  // one more may have reached the disk before its writer heard so; none beyond
  t.true(Object.keys(all).length <= last + 3);
  // and the next writer goes on from there
  await (await openState(top)).recordSuccess('/after.git', { fingerprint: fp(2) });
  t.is((await (await openState(top)).get('/after.git'))?.fingerprint, fp(2));
});

test("the table all() handed out stays as it was through later changes, this process's and another's; get() and a later all() read on", async (t) => {
  const { top, store } = await twoRecorded(t);
  const held = await store.all();
  const other = await openState(top);
  await other.recordSuccess('/c.git', { fingerprint: fp(3) });
  t.is((await store.get('/c.git'))?.fingerprint, fp(3), "get() reads another process's line");
  await store.recordSuccess('/a.git', { fingerprint: fp(10) });
  await store.remove('/b.git');
  t.deepEqual(Object.keys(held).sort(), ['/a.git', '/b.git']);
  t.is(held['/a.git']?.fingerprint, fp(1));
  const now = await store.all();
  t.deepEqual(Object.keys(now).sort(), ['/a.git', '/c.git']);
  t.is(now['/a.git']?.fingerprint, fp(10));
  await other.recordSuccess('/d.git', { fingerprint: fp(4) });
  await store.recordSuccess('/e.git', { fingerprint: fp(5) });
  t.deepEqual(Object.keys(held).sort(), ['/a.git', '/b.git'], 'still as it was');
  t.deepEqual(Object.keys(await store.all()).sort(), ['/a.git', '/c.git', '/d.git', '/e.git']);
  t.deepEqual(Object.keys(await (await openState(top)).all()).sort(), ['/a.git', '/c.git', '/d.git', '/e.git']);
});
