/**
 * Crashes of the replica: `bundlemirror pull` killed with -9 (the CLI and
 * every git process it started, as the OOM killer or a power cut would) at
 * chosen and at seeded random points. After every kill, each repository
 * holds either its old refs or the origin's, never a mixture, and git fsck
 * is clean; the next run completes without waiting, re-downloads nothing it
 * already had, and leaves no temp packs, locks, partials or staging behind.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireLock } from '../../src/lock/lock.js';
import type { BundlemirrorError } from '../../src/errors.js';
import { acquireToplevelLock } from '../../src/replica/toplevel-lock.js';
import { tempDir } from '../support/repos.js';
import { git } from '../../src/git/exec.js';
import { writeConfig } from '../support/mirror.js';
import type { CliResult } from '../support/cli.js';
import { FAST_ENV, leftovers, startCli, verifyMirror, waitUntil } from '../support/reliability.js';
import { advanceOrigin, LAB_PATHS, rng, startLab } from '../support/lab.js';

/** Bytes taken from partial downloads, summed from the per-repository log lines ("N bytes, M resumed"). */
function resumedFromLog(stderr: string): number {
  let n = 0;
  for (const m of stderr.matchAll(/\((\d+) bytes, (\d+) resumed\)/g)) n += Number(m[2]);
  return n;
}

async function partialBytes(toplevel: string): Promise<number> {
  const dir = join(toplevel, '.bundlemirror', 'partial');
  let n = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.endsWith('.part'))
      n += await stat(join(dir, name)).then(
        (s) => s.size,
        () => 0,
      ); // committed meanwhile
  }
  return n;
}

test('a pull killed mid-download resumes on the next run without re-downloading what it had', async (t) => {
  const lab = await startLab({ bigBytes: 900_000, bytesPerSecond: 2_000_000 });
  t.teardown(() => lab.close());

  // what an uninterrupted pull costs on the wire, measured on a second replica
  const refTop = join(lab.dir, 'reference');
  const refConfig = await writeConfig(lab.dir, {
    toplevel: refTop,
    manifest: lab.proxy.url('/manifest.js.gz'),
    site: lab.proxy.url('/git'),
    name: 'reference.conf',
  });
  let wire = lab.proxy.stats.bytesDownstream;
  const reference = await startCli(['pull', '-c', refConfig, '--no-progress'], { env: FAST_ENV }).exited;
  t.is(reference.code, 0);
  const whole = lab.proxy.stats.bytesDownstream - wire;

  wire = lab.proxy.stats.bytesDownstream;
  const killed = startCli(['pull', '-c', lab.config, '--no-progress'], { env: FAST_ENV });
  const partials = join(lab.replicaTop, '.bundlemirror', 'partial');
  const midway = await waitUntil(async () => (await partialBytes(lab.replicaTop)) > whole / 3, killed.exited);
  t.true(midway, 'the kill lands while bundles are downloading');
  killed.killGroup();
  await killed.exited;
  const had = await partialBytes(lab.replicaTop);
  t.true(had > 0 && (await readdir(partials)).length > 0, 'the partial download survives kill -9');

  wire = lab.proxy.stats.bytesDownstream;
  const again = await lab.pull();
  const second = lab.proxy.stats.bytesDownstream - wire;
  t.is(again.code, 0, again.stderr);
  // the killed run fetched the manifest; the next one must still do the work (not "manifest unchanged")
  // (repositories the killed run had finished are "unchanged")
  const counts =
    /^cloned (\d), updated 0, unchanged (\d), failed 0; downloaded [0-9.]+ [KM]iB, saved [0-9.]+ [KM]iB by resuming\n$/.exec(
      again.stdout,
    );
  t.truthy(counts, again.stdout);
  t.is(Number(counts?.[1]) + Number(counts?.[2]), 3);
  t.true(Number(counts?.[1]) >= 1);
  t.is(resumedFromLog(again.stderr), had, 'exactly the bytes on disk were resumed');
  t.true(second <= whole - had + 64 * 1024, `second run: ${second} bytes on the wire, the remainder is ${whole - had}`);
  t.true(second >= whole - had - 64 * 1024, `second run: ${second} bytes on the wire, the remainder is ${whole - had}`);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  t.deepEqual(await leftovers(lab.replicaTop), []);
});

test('a pull killed after verifying its bundles does not download them again', async (t) => {
  const lab = await startLab({ bigBytes: 600_000 });
  t.teardown(() => lab.close());
  // every unbundle is held back long enough for the kill to land before git reads the big verified bundle
  const killed = startCli(['pull', '-c', lab.config, '--no-progress'], {
    env: { ...FAST_ENV, ...lab.shim.env({ unbundle: 10_000 }) },
  });
  const cache = join(lab.replicaTop, '.bundlemirror', 'bundles');
  const bigVerified = async () => {
    for (const name of await readdir(cache).catch(() => [] as string[]))
      if ((await stat(join(cache, name))).size > 1_000_000) return true;
    return false;
  };
  t.true(await waitUntil(bigVerified, killed.exited), 'the big bundle was verified');
  t.true(await lab.shim.started('unbundle', killed.exited));
  killed.killGroup();
  await killed.exited;

  const wire = lab.proxy.stats.bytesDownstream;
  const again = await lab.pull(['--json']);
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { counts: { cloned: 3 } });
  t.true(
    lab.proxy.stats.bytesDownstream - wire < 1_000_000,
    `the verified bundle was not fetched again (${lab.proxy.stats.bytesDownstream - wire} bytes on the wire)`,
  );
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  t.deepEqual(await leftovers(lab.replicaTop), [], 'staging and the bundle cache are cleaned up');
});

test('ref locks left by a git process killed mid-transaction do not block the next pull', async (t) => {
  const lab = await startLab({ bigBytes: 0 });
  t.teardown(() => lab.close());
  t.is((await lab.pull()).code, 0);
  await advanceOrigin(lab, rng(7));
  const beta = lab.worktrees['/pub/sub/beta.git']!;
  await beta.commit('more');
  await beta.push('main');
  t.is((await lab.publish()).code, 0);

  // exactly what `kill -9` during `git update-ref --stdin` leaves (verified on git 2.39): one lock per ref being changed
  const replica = join(lab.replicaTop, 'pub/sub/beta.git');
  const heads = (await git(['for-each-ref', '--format=%(refname)'], { gitDir: replica })).stdout
    .toString()
    .trim()
    .split('\n');
  const old = new Date(Date.now() - 10_000);
  for (const file of [
    ...heads.map((h) => join(replica, `${h}.lock`)),
    join(replica, 'packed-refs.lock'),
    join(replica, 'HEAD.lock'),
  ]) {
    await writeFile(file, '');
    await utimes(file, old, old);
  }
  const r = await lab.pull();
  t.is(r.code, 0, r.stderr);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  t.deepEqual(await leftovers(lab.replicaTop), []);
});

test('a second pull while one runs exits 2 naming the running one; the first completes', async (t) => {
  const lab = await startLab({ bigBytes: 600_000, bytesPerSecond: 300_000 });
  t.teardown(() => lab.close());
  const first = startCli(['pull', '-c', lab.config, '--no-progress'], { env: FAST_ENV });
  t.true(
    await waitUntil(
      async () => (await readdir(join(lab.replicaTop, '.bundlemirror', 'partial')).catch(() => [])).length > 0,
      first.exited,
    ),
  );
  // the link stays down while the second pull runs, so the first still holds the lock however slowly the second starts
  let second!: CliResult;
  await lab.restartLink(async () => (second = await lab.pull()));
  t.is(second.code, 2);
  t.regex(second.stderr, /\[E_LOCKED\]/);
  t.regex(second.stderr, new RegExp(`pid ${first.child.pid}\\b`), 'the running pull is named');
  t.is((await first.exited).code, 0, first.stderr);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
});

test('the locks of a pull and of a publish killed -9 on this host are taken over at once, not after 30 s', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const holder = spawn(
    process.execPath,
    [
      '--import=tsx',
      '--input-type=module',
      '-e',
      `const { acquireToplevelLock } = await import(${JSON.stringify(join(root, 'src/replica/toplevel-lock.ts'))});
       const { acquireLock } = await import(${JSON.stringify(join(root, 'src/lock/lock.ts'))});
       await acquireToplevelLock(${JSON.stringify(dir)});
       await acquireLock({ path: ${JSON.stringify(join(dir, '.publish'))}, what: 'publish' });
       console.log('locked');
       setInterval(() => {}, 1000);`,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => void holder.kill('SIGKILL'));
  await new Promise<void>((resolve) =>
    holder.stdout!.on('data', (c: Buffer) => c.toString().includes('locked') && resolve()),
  );
  await t.throwsAsync(acquireToplevelLock(dir), { message: new RegExp(`pid ${holder.pid}`) });
  holder.kill('SIGKILL');
  await new Promise((resolve) => holder.on('exit', resolve));

  const started = Date.now();
  const releasePull = await acquireToplevelLock(dir);
  const releasePublish = await acquireLock({ path: join(dir, '.publish'), what: 'publish' });
  // at most QUIET_MS (2 s) of waiting for the dead holder's last refresh to age
  t.true(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  await releasePull();
  await releasePublish();
});

/** Where a publish would take its lock, in a directory of its own that the test removes. */
async function publishLockIn(t: ExecutionContext): Promise<{ path: string; lockDir: string }> {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const path = join(dir, '.publish');
  return { path, lockDir: `${path}.lock` };
}

test('a lock with no owner file, its holder killed between taking it and writing the file, is taken over after 5 s of quiet, not 30 s', async (t) => {
  const { path, lockDir } = await publishLockIn(t);
  // made 10 s ago and not refreshed while watched (3 s): taken over, far sooner than 30 s
  await mkdir(lockDir);
  const old = new Date(Date.now() - 10_000);
  await utimes(lockDir, old, old);
  let started = Date.now();
  const first = await acquireLock({ path, what: 'publish' });
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  t.deepEqual(JSON.parse(await readFile(`${lockDir}.owner`, 'utf8')).pid, process.pid);
  await first();
  // an owner file cut short (killed mid-write) names nobody either
  await mkdir(lockDir);
  await writeFile(`${lockDir}.owner`, '');
  await utimes(lockDir, old, old);
  started = Date.now();
  const cut = await acquireLock({ path, what: 'publish' });
  t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  await cut();
  // made just now: taken once it has been quiet for 5 s, well before proper-lockfile's 30 s
  await mkdir(lockDir);
  started = Date.now();
  const second = await acquireLock({ path, what: 'publish', wait: 20_000 });
  const took = Date.now() - started;
  t.true(took >= 4000 && took < 15_000, `took ${took} ms`);
  await second();
});

test('a lock with no owner file that its holder keeps refreshing is not taken over', async (t) => {
  const { path, lockDir } = await publishLockIn(t);
  await mkdir(lockDir);
  const refresh = setInterval(() => void utimes(lockDir, new Date(), new Date()).catch(() => {}), 500);
  t.teardown(() => clearInterval(refresh));
  await t.throwsAsync(acquireLock({ path, what: 'publish' }), { code: 'E_LOCKED' });
  t.true((await stat(lockDir)).isDirectory());
});

test('a lock whose holder writes its owner file a moment after taking it is not taken over', async (t) => {
  const { path, lockDir } = await publishLockIn(t);
  await mkdir(lockDir);
  const late = setTimeout(
    () =>
      void writeFile(
        `${lockDir}.owner`,
        JSON.stringify({ pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() }),
      ),
    300,
  );
  t.teardown(() => clearTimeout(late));
  await t.throwsAsync(acquireLock({ path, what: 'publish' }), { code: 'E_LOCKED' });
  t.true((await stat(lockDir)).isDirectory());
});

test('temp files a killed pull was writing (state, manifest, description) are removed by the next run', async (t) => {
  const lab = await startLab({ bigBytes: 0 });
  t.teardown(() => lab.close());
  t.is((await lab.pull()).code, 0);
  // the writer's pid is in the name (src/fs/atomic.ts): use one that has certainly exited
  const dead = await new Promise<number>((resolve) => {
    const c = spawn(process.execPath, ['-e', '0']);
    c.on('exit', () => resolve(c.pid!));
  });
  const planted = [
    `.bm-tmp-manifest.js.gz.${dead}.0badc0de`,
    `.bundlemirror/.bm-tmp-state.json.${dead}.0badc0de`,
    `pub/sub/beta.git/.bm-tmp-description.${dead}.0badc0de`,
  ];
  for (const rel of planted) await writeFile(join(lab.replicaTop, rel), 'half written');
  t.deepEqual(await leftovers(lab.replicaTop), [...planted].sort());
  await advanceOrigin(lab, rng(11)); // work for beta or its neighbours
  const beta = lab.worktrees['/pub/sub/beta.git']!;
  await beta.commit('touch beta');
  await beta.push('main');
  t.is((await lab.publish()).code, 0);
  const r = await lab.pull();
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await leftovers(lab.replicaTop), []);
});

test('a lock whose owner file cannot be written fails with E_DISK naming why, and is given back', async (t) => {
  const { path, lockDir } = await publishLockIn(t);
  await mkdir(`${lockDir}.owner`); // in the owner file's place: writing it fails with EISDIR, not a full disk
  const err = await t.throwsAsync<BundlemirrorError>(acquireLock({ path, what: 'publish' }), { code: 'E_DISK' });
  t.regex(err?.hint ?? '', /EISDIR/, 'the hint names the error, not a full disk');
  await t.throwsAsync(stat(lockDir), { code: 'ENOENT' }, 'the lock is not left held');
});
