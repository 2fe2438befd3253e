/**
 * The replica's state store (state.json under a file lock) and the
 * one-pull-per-toplevel lock, with real files and real child processes.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBundlemirrorError, type BundlemirrorError } from '../src/errors.js';
import { check } from '../src/lock/lock.js';
import { acquireToplevelLock, checkToplevelLock } from '../src/replica/toplevel-lock.js';
import { openState, type StateStore } from '../src/replica/state.js';
import { tempDir } from './support/repos.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const fp = (n: number): string => n.toString(16).padStart(40, '0');

async function freshStore(
  t: import('ava').ExecutionContext,
  warnings: string[] = [],
): Promise<{ toplevel: string; store: StateStore }> {
  const { dir, cleanup } = await tempDir('bm-state-');
  t.teardown(cleanup);
  const store = await openState(dir, { warn: (m) => warnings.push(m) });
  return { toplevel: dir, store };
}

/** Runs a TypeScript snippet in a child node process (so locks are really held by another pid). */
function child(script: string): ChildProcess {
  return spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function waitForLine(proc: ChildProcess, text: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`child did not print ${text} (stdout ${out}, stderr ${err})`)),
      timeoutMs,
    );
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on('exit', (code) => {
      if (!out.includes(text)) {
        clearTimeout(timer);
        reject(new Error(`child exited ${code} before printing ${text}: ${err}`));
      }
    });
  });
}

function exited(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.on('exit', (code) => resolve(code));
  });
}

// ---------------------------------------------------------------- state store

test('a new toplevel starts with empty state; a verified repository is recorded in .bundlemirror/state.json', async (t) => {
  const { toplevel, store } = await freshStore(t);
  t.deepEqual(await store.all(), {});
  t.is(store.file, join(toplevel, '.bundlemirror', 'state.json'));
  const rec = await store.recordSuccess('/pub/a.git', {
    fingerprint: fp(1),
    head: 'ref: refs/heads/main',
    owner: 'Me',
    symlinks: ['/b.git', '/a-old.git'],
  });
  t.like(rec, {
    fingerprint: fp(1),
    head: 'ref: refs/heads/main',
    description: null,
    owner: 'Me',
    symlinks: ['/a-old.git', '/b.git'],
  });
  t.truthy(rec.lastSuccess);
  t.deepEqual(await store.get('/pub/a.git'), rec);
  // the first change writes the snapshot (there was none); later ones go to its journal
  const onDisk = JSON.parse(await readFile(store.file, 'utf8'));
  t.is(onDisk.version, 2);
  t.deepEqual(onDisk.repos['/pub/a.git'], rec);
});

test('a failure is recorded with its code, keeps what was known, and the next success clears it', async (t) => {
  const { store } = await freshStore(t);
  await store.recordSuccess('/a.git', { fingerprint: fp(1), appliedBundles: ['a'.repeat(64)] });
  const { BundlemirrorError } = await import('../src/errors.js');
  await store.recordFailure('/a.git', new BundlemirrorError('E_DOWNLOAD', 'connection reset'));
  const failed = await store.recordFailure('/a.git', new Error('again'));
  t.like(failed, { fingerprint: fp(1), failures: 2, lastError: { code: 'E_UNKNOWN', message: 'again' } });
  t.deepEqual(failed.appliedBundles, ['a'.repeat(64)]);
  const ok = await store.recordSuccess('/a.git', { fingerprint: fp(2) });
  t.is(ok.lastError, undefined);
  t.is(ok.failures, undefined);
  t.deepEqual(ok.appliedBundles, ['a'.repeat(64)], 'applied bundles are kept unless replaced');
  const first = await store.recordFailure('/new.git', Object.assign(new Error('disk full'), { code: 'ENOSPC' }));
  t.like(first, { fingerprint: null, failures: 1, lastError: { code: 'ENOSPC' } });
});

test('update, remove and retain edit entries under the lock', async (t) => {
  const { store } = await freshStore(t);
  for (const p of ['/a.git', '/b.git', '/c.git']) await store.recordSuccess(p, { fingerprint: fp(1) });
  await store.update('/a.git', (cur) => (cur ? { ...cur, owner: 'Changed' } : cur));
  t.is((await store.get('/a.git'))?.owner, 'Changed');
  await store.update('/b.git', () => undefined);
  await store.remove('/nonexistent.git');
  t.deepEqual(Object.keys(await store.all()).sort(), ['/a.git', '/c.git']);
  t.deepEqual(await store.retain(['/a.git']), ['/c.git']);
  t.deepEqual(Object.keys(await store.all()), ['/a.git']);
});

test('an invalid entry is refused as a bug (E_INTERNAL, not E_DISK) and nothing is written', async (t) => {
  const { store } = await freshStore(t);
  await store.recordSuccess('/a.git', { fingerprint: fp(1) });
  const err = await t.throwsAsync(store.update('/a.git', () => ({ fingerprint: 'not-a-sha1' })));
  t.like(err, { code: 'E_INTERNAL', repo: '/a.git' });
  t.is((err as BundlemirrorError).exitStatus, 70);
  t.is((await store.get('/a.git'))?.fingerprint, fp(1));
});

test('manifest validators are kept per URL', async (t) => {
  const { store } = await freshStore(t);
  t.is(await store.manifestValidators('https://o/manifest.js.gz'), undefined);
  const v = {
    url: 'https://o/manifest.js.gz',
    etag: '"abc"',
    lastModified: 'Tue, 03 Nov 2026 10:00:00 GMT',
    fetchedAt: '2026-11-03T10:00:01Z',
    configMtimeMs: 5,
  };
  await store.setManifestValidators(v);
  t.deepEqual(await store.manifestValidators('https://o/manifest.js.gz'), v);
  t.is(
    await store.manifestValidators('https://elsewhere/manifest.js.gz'),
    undefined,
    'validators of another URL are useless',
  );
});

test('a deleted state.json just means empty state', async (t) => {
  const { store } = await freshStore(t);
  await store.recordSuccess('/a.git', { fingerprint: fp(1) });
  await rm(store.file);
  t.deepEqual(await store.all(), {});
  await store.recordSuccess('/b.git', { fingerprint: fp(2) });
  t.deepEqual(Object.keys(await store.all()), ['/b.git']);
});

test('a corrupt state.json is moved aside with a warning and the store starts empty', async (t) => {
  const warnings: string[] = [];
  const { toplevel, store } = await freshStore(t, warnings);
  await writeFile(store.file, '{"version": 1, "repos": {"/a.git": {"fingerpr');
  t.deepEqual(await store.all(), {}, 'a plain read tolerates it');
  t.true(
    (await readdir(join(toplevel, '.bundlemirror'))).includes('state.json'),
    'but only a writer holding the lock moves it aside',
  );
  await store.recordSuccess('/b.git', { fingerprint: fp(2) });
  const names = await readdir(join(toplevel, '.bundlemirror'));
  const aside = names.filter((n) => n.startsWith('state.json.corrupt-'));
  t.is(aside.length, 1);
  t.is(
    await readFile(join(toplevel, '.bundlemirror', aside[0]!), 'utf8'),
    '{"version": 1, "repos": {"/a.git": {"fingerpr',
    'the old bytes are kept for inspection',
  );
  t.deepEqual(Object.keys(await store.all()), ['/b.git']);
  t.true(
    warnings.some((w) => w.includes(join(toplevel, '.bundlemirror', aside[0]!))),
    'the warning names where the file went',
  );
});

test('a state file of another version is moved aside rather than misread', async (t) => {
  const warnings: string[] = [];
  const { store } = await freshStore(t, warnings);
  await writeFile(store.file, JSON.stringify({ version: 99, repos: {} }));
  await store.recordSuccess('/a.git', { fingerprint: fp(1) });
  t.true(warnings.some((w) => w.includes('version 99')));
  t.deepEqual(Object.keys(await store.all()), ['/a.git']);
});

test('a malformed entry is dropped with a warning; the other entries survive', async (t) => {
  const warnings: string[] = [];
  const { store } = await freshStore(t, warnings);
  await writeFile(
    store.file,
    JSON.stringify({ version: 1, repos: { '/good.git': { fingerprint: fp(1) }, '/bad.git': { fingerprint: 42 } } }),
  );
  t.deepEqual(Object.keys(await store.all()), ['/good.git']);
  t.true(warnings.some((w) => w.includes('/bad.git')));
  // null entries, the first one included, are dropped too, not kept as null for the next run to trip on
  for (const repos of [
    { '/null.git': null, '/good.git': { fingerprint: fp(1) } },
    { '/good.git': { fingerprint: fp(1) }, '/null.git': null },
  ]) {
    await writeFile(
      store.file,
      `{"version": 1, "repos": ${JSON.stringify(repos).replace('{', '{"__proto__": null, ')}}`,
    );
    const all = await store.all();
    t.deepEqual(Object.keys(all), ['/good.git'], JSON.stringify(repos));
    t.true(Object.values(all).every((r) => r !== null && typeof r === 'object'));
    t.true(warnings.some((w) => w.includes('/null.git')));
  }
});

test('many concurrent changes from one process all land, leaving no temp file or lock behind', async (t) => {
  const { toplevel, store } = await freshStore(t);
  await Promise.all(
    Array.from({ length: 200 }, (_, i) => store.recordSuccess(`/r/${i}.git`, { fingerprint: fp(i + 1) })),
  );
  const all = await store.all();
  t.is(Object.keys(all).length, 200);
  t.is(all['/r/199.git']?.fingerprint, fp(200));
  const names = await readdir(join(toplevel, '.bundlemirror'));
  t.deepEqual(
    names.filter((n) => n !== 'state.json' && !/^state\.[0-9a-f]+\.journal$/.test(n)),
    [],
    'no temp file and no lock left behind',
  );
  t.true(names.filter((n) => n.endsWith('.journal')).length <= 1, 'one journal at most: the snapshot names it');
});

test("two processes writing the same state file lose none of each other's updates", async (t) => {
  const { toplevel, store } = await freshStore(t);
  const script = (tag: string): string => `
    const { openState } = await import(${JSON.stringify(join(ROOT, 'src/replica/state.ts'))});
    const store = await openState(${JSON.stringify(toplevel)});
    for (let i = 0; i < 40; i++) {
      await store.recordSuccess('/${tag}/' + i + '.git', { fingerprint: i.toString(16).padStart(40, '0') });
    }
    console.log('done');
  `;
  const a = child(script('a'));
  const b = child(script('b'));
  const mine = (async () => {
    for (let i = 0; i < 40; i++) await store.recordSuccess(`/parent/${i}.git`, { fingerprint: fp(i) });
  })();
  await Promise.all([waitForLine(a, 'done', 60_000), waitForLine(b, 'done', 60_000), mine]);
  await Promise.all([exited(a), exited(b)]);
  const all = await store.all();
  t.is(Object.keys(all).length, 120);
  for (const tag of ['a', 'b', 'parent']) t.truthy(all[`/${tag}/39.git`], tag);
});

test('a writer of state.json killed with -9 inside its read-modify-write does not hold up the next write until the lock goes stale', async (t) => {
  const { toplevel, store } = await freshStore(t);
  await store.recordSuccess('/a.git', { fingerprint: fp(1) });
  // a pull killed while writing its state: the lock is held, its holder never comes back
  const writer = child(`
    const { openState } = await import(${JSON.stringify(join(ROOT, 'src/replica/state.ts'))});
    const store = await openState(${JSON.stringify(toplevel)});
    await store.update('/b.git', () => {
      console.log('inside');
      for (;;);
    });
  `);
  t.teardown(() => {
    writer.kill('SIGKILL');
  });
  await waitForLine(writer, 'inside', 60_000);
  t.like(await check(store.file), { held: true, owner: { pid: writer.pid } }, 'the lock names its holder');
  writer.kill('SIGKILL');
  await exited(writer);
  // the state lock goes stale after 10 s; waiting less than that shows the dead holder's lock was taken over by its pid
  const next = await openState(toplevel, { lockWaitMs: 8000 });
  await next.recordSuccess('/c.git', { fingerprint: fp(3) });
  t.deepEqual(
    Object.keys(await next.all()).sort(),
    ['/a.git', '/c.git'],
    'the killed write left nothing, the next one is whole',
  );
  t.deepEqual(await check(store.file), { held: false, owner: null });
});

test('openState refuses a toplevel that does not exist', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const err = await t.throwsAsync(openState(join(dir, 'missing')));
  t.true(isBundlemirrorError(err) && err.code === 'E_TOPLEVEL');
});

// ---------------------------------------------------------------- pull lock

test('a second pull on the same toplevel in one process fails at once with E_LOCKED naming the holder', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const release = await acquireToplevelLock(dir);
  t.like(await checkToplevelLock(dir), { held: true, owner: { pid: process.pid } });
  const started = Date.now();
  const err = await t.throwsAsync(acquireToplevelLock(dir));
  t.true(Date.now() - started < 2000, 'no waiting');
  t.true(isBundlemirrorError(err));
  if (isBundlemirrorError(err)) {
    t.is(err.code, 'E_LOCKED');
    t.is(err.exitStatus, 2);
    t.true(err.message.includes(`pid ${process.pid}`), `the message names the holder: ${err.message}`);
    t.truthy(err.hint);
  }
  await release();
  await release(); // idempotent
  const again = await acquireToplevelLock(dir);
  await again();
  t.deepEqual(await checkToplevelLock(dir), { held: false, owner: null });
});

test('the pull lock does not create a missing toplevel', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const err = await t.throwsAsync(acquireToplevelLock(join(dir, 'typo')));
  t.true(isBundlemirrorError(err) && err.code === 'E_TOPLEVEL');
  t.deepEqual(await readdir(dir), []);
});

test('a pull lock held by another process blocks; after that process is killed -9 the lock goes stale and is taken over', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const holder = child(`
    const { acquireToplevelLock } = await import(${JSON.stringify(join(ROOT, 'src/replica/toplevel-lock.ts'))});
    await acquireToplevelLock(${JSON.stringify(dir)}, { staleMs: 2000 });
    console.log('locked');
    setInterval(() => {}, 1000);
  `);
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  await waitForLine(holder, 'locked');
  const err = await t.throwsAsync(acquireToplevelLock(dir, { staleMs: 2000 }));
  t.true(isBundlemirrorError(err) && err.code === 'E_LOCKED');
  t.true(err!.message.includes(`pid ${holder.pid}`), err!.message);

  holder.kill('SIGKILL');
  await exited(holder);
  // the holder refreshed the lock every second; once it stops, the lock is stale after 2 s
  let release: (() => Promise<void>) | undefined;
  const deadline = Date.now() + 10_000;
  while (!release && Date.now() < deadline) {
    try {
      release = await acquireToplevelLock(dir, { staleMs: 2000 });
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  t.truthy(release, 'the stale lock was taken over');
  t.like(await checkToplevelLock(dir), { owner: { pid: process.pid } });
  await release?.();
});
