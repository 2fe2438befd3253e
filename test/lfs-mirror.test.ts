import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lfsObjectPath } from '../src/lfs/oid.js';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { startServer } from '../src/server/server.js';
import { runCli } from './support/cli.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { commitLfsFile, hasGitLfs, startLfsOrigin, writerWorkTree, type LfsOrigin } from './support/lfs.js';
import { fingerprintOf, pull, writeConfig } from './support/mirror.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const REPO = '/pub/assets.git';

async function pushAssets(o: LfsOrigin, sizes: number[]): Promise<{ wt: string; files: Map<string, Buffer> }> {
  const wt = await writerWorkTree(o, 'alice');
  const files = new Map<string, Buffer>();
  for (const [i, size] of sizes.entries())
    files.set(`asset-${i}.bin`, await commitLfsFile(o.client, wt, `asset-${i}.bin`, size));
  const r = await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: wt });
  if (r.code !== 0) throw new Error(r.stderr);
  return { wt, files };
}

async function publish(o: LfsOrigin, ...args: string[]) {
  const r = await runCli(['publish', '--toplevel', o.toplevel, '--out', o.out, ...args]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r;
}

test('LFS files travel origin -> publish -> pull -> replica serve -> git clone, with the origin stopped', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { files } = await pushAssets(o, [700_000, 300_000]);
  const published = await publish(o);
  t.regex(published.stdout, /2 LFS object\(s\)/);

  const index = parseRepoIndex(await readFile(join(o.out, 'pub/assets.git/index.json')), REPO);
  t.deepEqual(index.lfs?.objects.map((x) => x.oid).sort(), [...files.values()].map(sha256).sort());
  for (const body of files.values()) {
    const inTree = await stat(lfsObjectPath(join(o.out, 'pub/assets.git'), sha256(body)));
    const inStore = await stat(lfsObjectPath(o.bare, sha256(body)));
    t.is(inTree.ino, inStore.ino, 'hard link, no second copy');
  }

  const toplevel = join(o.dir, 'replica');
  const config = await writeConfig(o.dir, {
    toplevel,
    manifest: `${o.server.url}/manifest.js.gz`,
    site: `${o.server.url}/git`,
  });
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  const replicaRepo = join(toplevel, 'pub/assets.git');
  for (const body of files.values()) t.true((await readFile(lfsObjectPath(replicaRepo, sha256(body)))).equals(body));

  // the next publish with nothing new adds nothing; the pull after it downloads nothing
  t.notRegex((await publish(o)).stdout, /LFS object/);

  await o.server.close();
  // a replica serves its own repositories: those of the manifest its pull wrote
  const replica = await startServer({ toplevel, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => replica.close());
  const clone = join(o.dir, 'clone');
  const c = await o.client.run(['clone', '--quiet', `${replica.url}/git${REPO}`, clone]);
  t.is(c.code, 0, c.stderr);
  for (const [name, body] of files)
    t.true((await readFile(join(clone, name))).equals(body), `${name} has its real content, not a pointer`);

  // a push through the replica's LFS API goes nowhere: it names the master
  const refused = await o.client.run(
    ['-c', `lfs.url=${replica.url}/git${REPO}/info/lfs`, 'lfs', 'lock', 'asset-0.bin'],
    { cwd: clone, okCodes: [1, 2] },
  );
  t.not(refused.code, 0);
});

test('an LFS object download cut every 256 KiB resumes: bytes on the wire at most 1.02x', async (t) => {
  const o = await startLfsOrigin(t);
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const { files } = await pushAssets(o, [3_000_000]);
  await publish(o);
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: o.server.port },
    cutAfterBytes: 256 * 1024,
  });
  t.teardown(() => proxy.close());
  const toplevel = join(o.dir, 'replica');
  const config = await writeConfig(o.dir, {
    toplevel,
    manifest: proxy.url('/manifest.js.gz'),
    site: proxy.url('/git'),
  });
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  const body = [...files.values()][0]!;
  t.true((await readFile(lfsObjectPath(join(toplevel, 'pub/assets.git'), sha256(body)))).equals(body));

  const index = parseRepoIndex(await readFile(join(o.out, 'pub/assets.git/index.json')), REPO);
  const payload =
    body.length +
    index.bundles.reduce((n, b) => n + b.size, 0) +
    (await stat(join(o.out, 'manifest.js.gz'))).size +
    (await stat(join(o.out, 'pub/assets.git/index.json'))).size;
  t.true(proxy.stats.cuts >= 10, `the link was cut ${proxy.stats.cuts} times`);
  const ratio = proxy.stats.bytesDownstream / payload;
  t.log(
    `wire ${proxy.stats.bytesDownstream} B for ${payload} B of files: ${ratio.toFixed(4)}x, ${proxy.stats.cuts} cuts`,
  );
  t.true(ratio <= 1.02, `ratio ${ratio}`);
});

test('status counts LFS objects; fsck finds a corrupt one and downloads it again without re-cloning', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { files } = await pushAssets(o, [200_000, 100_000]);
  await publish(o);
  const toplevel = join(o.dir, 'replica');
  const config = await writeConfig(o.dir, {
    toplevel,
    manifest: `${o.server.url}/manifest.js.gz`,
    site: `${o.server.url}/git`,
  });
  t.is((await pull(config)).code, 0);

  const status = JSON.parse((await runCli(['status', '-c', config, '--json'])).stdout) as {
    lfs: { objects: number; bytes: number };
    repos: { path: string; lfsObjects: number }[];
  };
  t.deepEqual(status.lfs, { objects: 2, bytes: 300_000 });
  t.is(status.repos.find((r) => r.path === REPO)?.lfsObjects, 2);
  t.regex((await runCli(['status', '-c', config, '--metrics'])).stdout, /^bundlemirror_replica_lfs_objects 2$/m);

  const repo = join(toplevel, 'pub/assets.git');
  const body = [...files.values()][0]!;
  const file = lfsObjectPath(repo, sha256(body));
  const bytes = await readFile(file);
  bytes.writeUInt8(bytes.readUInt8(1000) ^ 0xff, 1000);
  await writeFile(file, bytes);
  const headBefore = (await stat(join(repo, 'objects'))).ino;

  const checked = await runCli(['fsck', '-c', config, '--no-repair', '--json']);
  t.is(checked.code, 1);
  const found = JSON.parse(checked.stdout) as { repos: { path: string; outcome: string; problems: string[] }[] };
  t.regex(found.repos.find((r) => r.path === REPO)!.problems.join('\n'), new RegExp(sha256(body)));

  const repaired = await runCli(['fsck', '-c', config, '--json']);
  t.is(repaired.code, 0, repaired.stderr);
  t.is(
    (JSON.parse(repaired.stdout) as { repos: { path: string; outcome: string }[] }).repos.find((r) => r.path === REPO)
      ?.outcome,
    'repaired',
  );
  t.true((await readFile(file)).equals(body));
  t.is((await stat(join(repo, 'objects'))).ino, headBefore, 'the repository itself was not re-cloned');
});

test('an offline kit carries the LFS objects: export from the published tree, import into an empty replica', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { files } = await pushAssets(o, [150_000, 50_000]);
  await publish(o);
  const kit = join(o.dir, 'kit.tar');
  const ex = await runCli(['export', '--bundles', o.out, '--out', kit]);
  t.is(ex.code, 0, ex.stderr);
  t.regex(ex.stdout, /2 LFS objects/);

  await o.server.close();
  const toplevel = join(o.dir, 'offline');
  const config = await writeConfig(o.dir, {
    toplevel,
    manifest: 'http://127.0.0.1:9/manifest.js.gz',
    site: 'http://127.0.0.1:9/git',
    name: 'offline.conf',
  });
  const im = await runCli(['import', kit, '-c', config]);
  t.is(im.code, 0, im.stderr);
  for (const body of files.values())
    t.true((await readFile(lfsObjectPath(join(toplevel, 'pub/assets.git'), sha256(body)))).equals(body));
});

test('git lfs itself resumes a download cut every 256 KiB with Range against serve: at most 1.02x on the wire', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { files } = await pushAssets(o, [1_500_000]);
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: o.server.port },
    cutAfterBytes: 256 * 1024,
  });
  t.teardown(() => proxy.close());
  const clone = join(o.dir, 'clone');
  const lfs = proxy.url(`/git${REPO}/info/lfs`);
  const c = await o.client.run([
    '-c',
    `lfs.url=${lfs}`,
    '-c',
    'lfs.transfer.maxretries=20',
    '-c',
    'lfs.transfer.maxretrydelay=1',
    'clone',
    '--quiet',
    o.bare,
    clone,
  ]);
  t.is(c.code, 0, c.stderr);
  const [name, body] = [...files][0]!;
  t.true((await readFile(join(clone, name))).equals(body));
  t.true(proxy.stats.cuts >= 4, `cut ${proxy.stats.cuts} times`);
  const ratio = proxy.stats.bytesDownstream / body.length;
  t.log(
    `git-lfs: ${proxy.stats.bytesDownstream} B on the wire for ${body.length} B, ${proxy.stats.cuts} cuts (${ratio.toFixed(4)}x)`,
  );
  t.true(ratio <= 1.02, `ratio ${ratio}`);
});

test('publish reports an LFS object the origin lacks by repository and oid, publishes the rest, and picks it up once uploaded', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { wt } = await pushAssets(o, [10_000]);
  // a pointer pushed without its object (the pre-push hook skipped)
  const lost = await commitLfsFile(o.client, wt, 'lost.bin', 20_000);
  t.is((await o.client.run(['push', '--quiet', '--no-verify', 'origin', 'main'], { cwd: wt })).code, 0);

  const first = await runCli(['publish', '--quiet', '--toplevel', o.toplevel, '--out', o.out]);
  t.is(first.code, 0, 'not a failure of the repository');
  t.regex(first.stderr, new RegExp(`${REPO}: LFS object ${sha256(lost)}`));
  t.regex(first.stdout, /1 LFS object\(s\) missing/);
  let index = parseRepoIndex(await readFile(join(o.out, 'pub/assets.git/index.json')), REPO);
  t.is(index.lfs?.objects.length, 1);
  t.deepEqual(index.lfs?.missing, [{ oid: sha256(lost), size: lost.length }]);

  t.is((await o.client.run(['lfs', 'push', '--object-id', 'origin', sha256(lost)], { cwd: wt })).code, 0);
  t.true((await readFile(lfsObjectPath(o.bare, sha256(lost)))).equals(lost));
  const second = await publish(o);
  t.regex(second.stdout, /; 1 LFS object\(s\) \(/);
  t.notRegex(second.stdout, /missing/);
  index = parseRepoIndex(await readFile(join(o.out, 'pub/assets.git/index.json')), REPO);
  t.is(index.lfs?.objects.length, 2);
  t.is(index.lfs?.missing, undefined);
});

test("a fork without its own copy of the LFS objects publishes them from its parent's store", async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { files } = await pushAssets(o, [40_000]);
  const fork = join(o.toplevel, 'pub/forks/assets-fork.git');
  t.is((await o.client.run(['clone', '--bare', '--quiet', o.bare, fork])).code, 0);
  const r = await runCli(['publish', '--toplevel', o.toplevel, '--out', o.out]);
  t.is(r.code, 0, r.stderr);
  t.notRegex(r.stdout + r.stderr, /missing/);
  const index = parseRepoIndex(
    await readFile(join(o.out, 'pub/forks/assets-fork.git/index.json')),
    '/pub/forks/assets-fork.git',
  );
  t.deepEqual(
    index.lfs?.objects.map((x) => x.oid),
    [...files.values()].map(sha256),
  );
  const body = [...files.values()][0]!;
  t.is(
    (await stat(lfsObjectPath(join(o.out, 'pub/forks/assets-fork.git'), sha256(body)))).ino,
    (await stat(lfsObjectPath(o.bare, sha256(body)))).ino,
  );
});

test('[pull] lfs = no mirrors the git history and no LFS object', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const { files } = await pushAssets(o, [30_000]);
  await publish(o);
  const toplevel = join(o.dir, 'replica');
  const config = await writeConfig(o.dir, {
    toplevel,
    manifest: `${o.server.url}/manifest.js.gz`,
    site: `${o.server.url}/git`,
    pull: 'lfs = no',
  });
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  t.is(await fingerprintOf(join(toplevel, 'pub/assets.git')), await fingerprintOf(o.bare));
  await t.throwsAsync(stat(lfsObjectPath(join(toplevel, 'pub/assets.git'), sha256([...files.values()][0]!))));
});
