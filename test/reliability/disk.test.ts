/**
 * A full disk on the replica, during a download and during an unbundle: the
 * replica's toplevel lives on a small tmpfs (mounted for the test when this
 * process may mount, as root in CI; otherwise the download case fills the
 * disk through /dev/full and the unbundle case is skipped, saying so), and a
 * ballast file takes the space away. The pull fails with E_DISK naming the
 * repository, the repository keeps its refs, and once the space is back the
 * next run completes, resuming the download it had started.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, rm, stat, statfs, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../../src/git/exec.js';
import { LAB_PATHS, startLab, type Lab } from '../support/lab.js';
import { leftovers, verifyMirror } from '../support/reliability.js';
import { showRefOf } from '../support/repos.js';

/** Mounts a tmpfs of `megabytes` at `dir`; false when this process may not mount. */
function mountTmpfs(dir: string, megabytes: number): boolean {
  if (process.env.BM_TEST_NO_MOUNT) return false; // to exercise the fallbacks where mounting works
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', dir], { stdio: 'ignore' });
  return r.status === 0;
}

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Takes all free space on `dir`'s filesystem except `leave` bytes. */
async function ballast(dir: string, leave: number): Promise<string> {
  const file = join(dir, 'ballast');
  await writeFile(file, Buffer.alloc(Math.max(0, (await freeBytes(dir)) - leave)));
  return file;
}

/** A replica (already in sync) whose toplevel is a fresh tmpfs; null when mounting is not possible here. */
async function labOnTmpfs(t: ExecutionContext): Promise<Lab | null> {
  const lab = await startLab({ bigBytes: 700_000 });
  t.teardown(() => lab.close());
  if (!mountTmpfs(lab.replicaTop, 48)) return null;
  t.teardown(() => {
    spawnSync('umount', ['-l', lab.replicaTop]);
  });
  const first = await lab.pull();
  t.is(first.code, 0, first.stderr);
  return lab;
}

/** A commit of `bytes` incompressible bytes on alpha, published: the next pull must download and unbundle about that much. */
async function bigChange(lab: Lab, bytes: number): Promise<void> {
  const wt = lab.worktrees['/pub/alpha.git']!;
  await wt.commit('a big change', bytes);
  await wt.push('main');
  const r = await lab.publish();
  if (r.code !== 0) throw new Error(r.stderr);
}

test('disk full during a download: E_DISK naming the repository, refs intact; with space back the next run resumes and completes', async (t) => {
  const lab = await labOnTmpfs(t);
  if (!lab) {
    // without mount rights: the partial download is pointed at /dev/full, where every write fails with ENOSPC
    const fallback = await startLab({ bigBytes: 700_000 });
    t.teardown(() => fallback.close());
    t.is((await fallback.pull()).code, 0);
    await bigChange(fallback, 2_000_000);
    const before = await showRefOf(join(fallback.replicaTop, 'pub/alpha.git'));
    const partials = join(fallback.replicaTop, '.bundlemirror/partial');
    await mkdir(partials, { recursive: true });
    for (const [sha, b] of fallback.known)
      if (b.size > 1_500_000) await symlink('/dev/full', join(partials, `${sha}.part`)).catch(() => {});
    const r = await fallback.pull();
    t.is(r.code, 1);
    t.regex(r.stderr, /\/pub\/alpha\.git: cannot write partial download .*: disk full \[E_DISK\]/);
    t.is(await showRefOf(join(fallback.replicaTop, 'pub/alpha.git')), before);
    for (const name of await readdir(partials)) await rm(join(partials, name), { force: true });
    t.is((await fallback.pull()).code, 0);
    for (const c of await verifyMirror(fallback.originTop, fallback.replicaTop, LAB_PATHS))
      t.true(c.ok, `${c.path}: ${c.why}`);
    t.log('mount is not permitted here: disk full simulated through /dev/full');
    return;
  }
  await bigChange(lab, 3_000_000);
  const alpha = join(lab.replicaTop, 'pub/alpha.git');
  const before = await showRefOf(alpha);
  const weight = await ballast(lab.replicaTop, 1_000_000);

  const r = await lab.pull();
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /\/pub\/alpha\.git: .*disk full.*\[E_DISK\]/);
  t.regex(r.stderr, /hint: free some space; the next run resumes where this one stopped/);
  t.is(await showRefOf(alpha), before, 'refs intact');
  t.is((await git(['fsck', '--no-dangling'], { gitDir: alpha, okCodes: [1, 2, 4] })).code, 0);

  await rm(weight); // the space is back
  const again = await lab.pull();
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /saved [0-9.]+ [KM]iB by resuming/);
  t.notRegex(again.stdout, /saved 0 B/);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  t.deepEqual(await leftovers(lab.replicaTop), []);
});

test('disk full during an unbundle: E_DISK naming the repository, refs intact, no temp pack left; with space back the next run completes', async (t) => {
  const lab = await labOnTmpfs(t);
  if (!lab) {
    t.log('skipped: filling a disk during git unbundle needs a small filesystem, and mount is not permitted here');
    t.pass();
    return;
  }
  await bigChange(lab, 3_000_000);
  const alpha = join(lab.replicaTop, 'pub/alpha.git');
  const before = await showRefOf(alpha);
  // room for the 3 MB download, not for git's copy of it as a pack
  const weight = await ballast(lab.replicaTop, 4_500_000);

  const r = await lab.pull();
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /\/pub\/alpha\.git: .*No space left on device.*\[E_DISK\]/);
  t.is(await showRefOf(alpha), before, 'refs intact');
  t.deepEqual(
    (await leftovers(lab.replicaTop)).filter((l) => l.includes('tmp_pack_')),
    [],
    'no temp pack left',
  );
  const cached = await readdir(join(lab.replicaTop, '.bundlemirror/bundles'));
  t.is(cached.length, 1, 'the verified bundle is kept for the next run');

  await rm(weight);
  const again = await lab.pull();
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /downloaded 0 B/, 'the kept bundle is used, not downloaded again');
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  t.deepEqual(await leftovers(lab.replicaTop), []);
  t.true((await stat(alpha)).isDirectory());
});

test('disk full while publishing: the repository fails with E_DISK, the published tree stays valid, and the next publish completes', async (t) => {
  const { tempDir, makeRepo } = await import('../support/repos.js');
  const { runCli } = await import('../support/cli.js');
  const { readManifestFile } = await import('../../src/manifest/manifest.js');
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'origin');
  const out = join(dir, 'published');
  await mkdir(out);
  if (!mountTmpfs(out, 16)) {
    await cleanup();
    t.log('skipped: filling the published tree needs a small filesystem, and mount is not permitted here');
    t.pass();
    return;
  }
  t.teardown(() => {
    spawnSync('umount', ['-l', out]);
  });
  const repo = await makeRepo(dir, toplevel, 'pub/big.git', { commits: 2, bytesPerCommit: 100_000 });
  const publish = () => runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet']);
  t.is((await publish()).code, 0);
  const before = await readManifestFile(join(out, 'manifest.js.gz'));
  await repo.wt.commit('large', 3_000_000);
  await repo.wt.push('main');
  const weight = await ballast(out, 1_000_000);
  const full = await publish();
  t.is(full.code, 1, full.stderr);
  t.regex(full.stderr, /\/pub\/big\.git: .*\[E_DISK\]/);
  t.deepEqual(
    await readManifestFile(join(out, 'manifest.js.gz')),
    before,
    'the manifest still describes what is on disk',
  );
  t.deepEqual(
    (await readdir(join(out, 'pub/big.git'))).filter((n) => n.startsWith('.bm-tmp-')),
    [],
    'no half-written bundle left',
  );
  await rm(weight);
  const again = await publish();
  t.is(again.code, 0, again.stderr);
  t.notDeepEqual(await readManifestFile(join(out, 'manifest.js.gz')), before);
});
