import test from 'ava';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import type { FsckReport } from '../src/replica/fsck/fsck-report.js';
import { runCli } from './support/cli.js';
import { showRefOf } from './support/repos.js';
import { fingerprintOf, pull, replicaFor, startOrigin, type Origin } from './support/mirror.js';

const BETA = '/pub/sub/beta.git';

async function packsOf(gitDir: string): Promise<string[]> {
  const dir = join(gitDir, 'objects', 'pack');
  return (await readdir(dir)).filter((n) => n.endsWith('.pack')).map((n) => join(dir, n));
}

/** Flips one byte in the middle of every pack of the repository (same size: only a hash can tell). */
async function corruptPacks(gitDir: string): Promise<void> {
  const packs = await packsOf(gitDir);
  if (packs.length === 0) throw new Error(`${gitDir} has no pack to corrupt`);
  for (const pack of packs) {
    const bytes = await readFile(pack);
    const at = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
    await chmod(pack, 0o644);
    await writeFile(pack, bytes);
  }
}

async function gitFsckClean(gitDir: string): Promise<{ ok: boolean; stderr: string }> {
  const r = await git(['fsck', '--full', '--no-dangling'], { gitDir, okCodes: [1, 2, 3, 4, 5, 6, 7, 8, 128] });
  return { ok: r.code === 0, stderr: r.stderr };
}

async function fsck(config: string, ...args: string[]): Promise<{ code: number; report: FsckReport; stderr: string }> {
  const r = await runCli(['fsck', '-c', config, '--json', ...args]);
  return { code: r.code, report: JSON.parse(r.stdout) as FsckReport, stderr: r.stderr };
}

async function mirrored(
  t: import('ava').ExecutionContext,
): Promise<{ origin: Origin; config: string; toplevel: string }> {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  return { origin, config, toplevel };
}

function outcomes(report: FsckReport): Record<string, string> {
  return Object.fromEntries(report.repos.filter((r) => r.kind === 'repository').map((r) => [r.path, r.outcome]));
}

test('a healthy replica passes fsck, reported per repository, exit 0', async (t) => {
  const { config } = await mirrored(t);
  const r = await runCli(['fsck', '-c', config]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^checked \d+: ok \d+, repaired 0, broken 0\n$/m);
  const { code, report } = await fsck(config);
  t.is(code, 0);
  t.deepEqual(outcomes(report), { '/pub/alpha.git': 'ok', '/pub/forks/alpha-fork.git': 'ok', [BETA]: 'ok' });
  t.true(report.repos.every((r) => r.problems.length === 0 && r.error === undefined));
});

test('a corrupt pack is found and the repository is cloned again: fingerprint equals the origin, git fsck clean, nothing left in quarantine', async (t) => {
  const { origin, config, toplevel } = await mirrored(t);
  const replica = join(toplevel, BETA);
  await corruptPacks(replica);
  t.false((await gitFsckClean(replica)).ok, 'the corruption is real');

  const { code, report, stderr } = await fsck(config);
  t.is(code, 0, stderr);
  const beta = report.repos.find((r) => r.path === BETA)!;
  t.is(beta.outcome, 'repaired');
  t.regex(beta.problems.join('\n'), /git fsck: .*(checksum|corrupt|inflate|unpack)/i);
  t.is(beta.repairedVia, 'bundles');
  t.is(beta.fingerprint, await fingerprintOf(join(origin.toplevel, BETA)));
  t.like(report.counts, { repaired: 1, broken: 0 });
  t.is(await showRefOf(replica), await showRefOf(join(origin.toplevel, BETA)));
  t.true((await gitFsckClean(replica)).ok);
  t.deepEqual(await readdir(join(toplevel, '.bundlemirror/quarantine')), []);
  // and the replica's books say so: the next pull has nothing to do
  const again = await pull(config, '--force', '--json');
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { counts: { cloned: 0, updated: 0, unchanged: 3 } });
});

test('a corrupt forkgroup object store is rebuilt together with every repository that borrows from it', async (t) => {
  const { origin, config, toplevel } = await mirrored(t);
  const stores = (await readdir(join(toplevel, 'objstore'))).filter((n) => n.endsWith('.git'));
  t.is(stores.length, 1, 'alpha and its fork share one store');
  const store = join(toplevel, 'objstore', stores[0]!);
  await corruptPacks(store);

  const { code, report, stderr } = await fsck(config);
  t.is(code, 0, stderr);
  t.like(outcomes(report), { '/pub/alpha.git': 'repaired', '/pub/forks/alpha-fork.git': 'repaired', [BETA]: 'ok' });
  t.is(report.repos.find((r) => r.kind === 'objstore')?.outcome, 'repaired');
  for (const p of ['/pub/alpha.git', '/pub/forks/alpha-fork.git']) {
    t.is(await fingerprintOf(join(toplevel, p)), await fingerprintOf(join(origin.toplevel, p)), p);
    t.true((await gitFsckClean(join(toplevel, p))).ok, p);
  }
  t.true((await gitFsckClean(store)).ok);
});

test("refs moved behind bundlemirror's back (fingerprint differs from the verified one) are detected and repaired", async (t) => {
  const { origin, config, toplevel } = await mirrored(t);
  const replica = join(toplevel, BETA);
  await git(['update-ref', '-d', 'refs/heads/devel'], { gitDir: replica });
  const { code, report } = await fsck(config, BETA);
  t.is(code, 0);
  t.deepEqual(outcomes(report), { [BETA]: 'repaired' });
  t.regex(report.repos[0]!.problems.join(), /refs changed behind bundlemirror's back/);
  t.is(await fingerprintOf(replica), await fingerprintOf(join(origin.toplevel, BETA)));
});

test('when the origin is down the corrupt repository is put back as it was, reported broken, exit 1', async (t) => {
  const { origin, config, toplevel } = await mirrored(t);
  const replica = join(toplevel, BETA);
  await corruptPacks(replica);
  const before = await Promise.all((await packsOf(replica)).map((p) => readFile(p)));
  await origin.server.close();
  // not the default five minutes of waiting for the origin to come back
  await writeFile(config, (await readFile(config, 'utf8')).replace('[pull]\n', '[pull]\nretry_for = 2s\n'));

  const r = await runCli(['fsck', '-c', config]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stdout, /^broken\s+\/pub\/sub\/beta\.git$/m);
  t.regex(r.stdout, /error: /);
  t.regex(r.stdout, /broken 1/);
  // the old copy is back in place, byte for byte, and nothing is left in quarantine
  const after = await Promise.all((await packsOf(replica)).map((p) => readFile(p)));
  t.deepEqual(after, before);
  t.deepEqual(await readdir(join(toplevel, '.bundlemirror/quarantine')), []);
  t.truthy(await showRefOf(replica));
});

test('--no-repair only reports (exit 1); --repack packs every healthy repository into one pack with a bitmap', async (t) => {
  const { config, toplevel } = await mirrored(t);
  const replica = join(toplevel, BETA);
  await corruptPacks(replica);
  const reportOnly = await fsck(config, '--no-repair');
  t.is(reportOnly.code, 1);
  t.is(reportOnly.report.repos.find((r) => r.path === BETA)?.outcome, 'broken');
  t.false((await gitFsckClean(replica)).ok, 'left as it was');

  const { code, report, stderr } = await fsck(config, '--repack');
  t.is(code, 0, stderr);
  t.true(
    report.repos.every((r) => r.repacked),
    'every repository and store repacked',
  );
  const files = await readdir(join(replica, 'objects', 'pack'));
  t.is(files.filter((n) => n.endsWith('.pack')).length, 1);
  t.is(files.filter((n) => n.endsWith('.bitmap')).length, 1);
  const store = join(
    toplevel,
    'objstore',
    (await readdir(join(toplevel, 'objstore'))).find((n) => n.endsWith('.git'))!,
  );
  t.is(
    (await git(['config', '--get', 'pack.island'], { gitDir: store })).stdout.toString().trim(),
    'refs/virtual/([0-9a-f]+)/',
  );
  // a member keeps borrowing: its own pack holds only what is not in the store
  t.true((await gitFsckClean(join(toplevel, 'pub/alpha.git'))).ok);
  t.true((await gitFsckClean(store)).ok);
});
