import test from 'ava';
import { readFile, readdir, rm, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import { readManifestFile } from '../src/manifest/manifest.js';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { showRefOf } from './support/repos.js';
import { breakBeta, fingerprintOf, pull, replicaFor, startOrigin, type Origin } from './support/mirror.js';
import { pullJson, repoIn } from './support/reports.js';
import { recordedState } from './support/state.js';
import { openState } from '../src/replica/state.js';

const PATHS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

async function assertInSync(t: import('ava').ExecutionContext, origin: Origin, replicaTop: string, paths = PATHS) {
  for (const p of paths) {
    const o = join(origin.toplevel, p);
    const r = join(replicaTop, p);
    t.is(await showRefOf(r), await showRefOf(o), `${p}: refs equal the origin's`);
    t.is(await fingerprintOf(r), await fingerprintOf(o));
    const fsck = await git(['fsck', '--no-dangling'], { gitDir: r, okCodes: [1, 2, 4] });
    t.is(fsck.code, 0, `${p}: git fsck clean: ${fsck.stderr}`);
  }
}

test('a fresh pull clones every repository from bundles, verified by fingerprint, with metadata', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  const r = await pullJson(['-c', config]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report, { counts: { cloned: 3, updated: 0, unchanged: 0, failed: 0 }, exitStatus: 0 });
  t.is(r.report.bytes.resumed, 0);
  for (const p of PATHS) {
    t.like(repoIn(r.report, p), { action: 'cloned', via: 'bundles' }, p);
    t.is(repoIn(r.report, p)?.fingerprint, await fingerprintOf(join(origin.toplevel, p)), `${p}: verified fingerprint`);
  }
  await assertInSync(t, origin, toplevel);
  const alpha = join(toplevel, 'pub/alpha.git');
  t.is((await readFile(join(alpha, 'HEAD'), 'utf8')).trim(), 'ref: refs/heads/main');
  t.is((await readFile(join(alpha, 'description'), 'utf8')).trim(), 'Alpha');
  t.is((await git(['config', 'gitweb.owner'], { gitDir: alpha })).stdout.toString().trim(), 'Alice');
  // local manifest in grokmirror's format, and nothing left behind
  const local = await readManifestFile(join(toplevel, 'manifest.js.gz'));
  t.deepEqual(Object.keys(local).sort(), PATHS);
  t.deepEqual(local, await readManifestFile(join(origin.out, 'manifest.js.gz')), 'the entries the origin published');
  t.deepEqual(await readdir(join(toplevel, '.bundlemirror/partial')), []);
  t.deepEqual(await readdir(join(toplevel, '.bundlemirror/bundles')), []);
  t.deepEqual(await readdir(join(toplevel, '.bundlemirror/staging')), []);
  const log = await readFile(join(origin.dir, 'pull.log'), 'utf8');
  t.regex(log, /"msg":"\/pub\/alpha\.git: /, 'the log file names what happened to each repository');
});

test('an unchanged manifest costs one conditional request (304) and nothing else', async (t) => {
  const origin = await startOrigin(t);
  const { config } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const lines: string[] = [];
  const server2 = await import('../src/server/server.js').then((m) =>
    m.startServer({ bundles: origin.out, host: '127.0.0.1', port: 0, log: (l) => lines.push(l) }),
  );
  t.teardown(() => server2.close());
  const text = (await readFile(config, 'utf8')).replaceAll(origin.server.url, server2.url);
  await writeFile(config, text);
  const first = await pull(config);
  t.is(first.code, 0);
  lines.length = 0;
  const again = await pullJson(['-c', config]);
  t.is(again.code, 0, again.stderr);
  t.like(again.report, { manifest: { unchanged: true }, counts: { unchanged: 3 } });
  t.deepEqual(again.report.repos, []);
  t.deepEqual(
    lines.map((l) => l.split(' ').slice(2, 5).join(' ')),
    ['GET /manifest.js.gz 304'],
  );
});

test('a push at the origin arrives as an incremental bundle: only new bytes cross the wire', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 200_000 });
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('small change');
  await alpha.wt.push('main');
  await origin.publish();
  const r = await pullJson(['-c', config]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { cloned: 0, updated: 1, unchanged: 2 });
  t.like(repoIn(r.report, '/pub/alpha.git'), { action: 'updated', via: 'bundles' });
  const index = parseRepoIndex(await readFile(join(origin.out, 'pub/alpha.git/index.json')), '/pub/alpha.git');
  const inc = index.bundles[1]!;
  t.is(r.report.bytes.downloaded, inc.size, 'the incremental bundle, and nothing else');
  await assertInSync(t, origin, toplevel);
});

test('force-pushes, ref deletions and new tags at the origin are mirrored exactly', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const beta = origin.repos['/pub/sub/beta.git']!;
  await beta.wt.run(['reset', '--hard', 'HEAD~2']);
  await beta.wt.commit('rewritten history');
  await beta.wt.push('+main');
  await beta.wt.run(['push', '--quiet', 'origin', ':devel']);
  await beta.wt.run(['tag', '-a', '-m', 'new tag', 'v2.0']);
  await beta.wt.push('v2.0');
  await origin.publish();
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  await assertInSync(t, origin, toplevel);
  t.false((await showRefOf(join(toplevel, 'pub/sub/beta.git'))).includes('refs/heads/devel'));
});

test('metadata changes at the origin (HEAD, description, owner) reach the replica without touching refs', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const alpha = join(origin.toplevel, 'pub/alpha.git');
  await git(['symbolic-ref', 'HEAD', 'refs/heads/devel'], { gitDir: alpha });
  await writeFile(join(alpha, 'description'), 'Alpha, renamed\n');
  await git(['config', 'gitweb.owner', 'Bob'], { gitDir: alpha });
  await origin.publish();
  const r = await pullJson(['-c', config]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { metadata: 1 });
  t.like(repoIn(r.report, '/pub/alpha.git'), { action: 'metadata' });
  const replica = join(toplevel, 'pub/alpha.git');
  t.is((await readFile(join(replica, 'HEAD'), 'utf8')).trim(), 'ref: refs/heads/devel');
  t.is((await readFile(join(replica, 'description'), 'utf8')).trim(), 'Alpha, renamed');
  t.is((await git(['config', 'gitweb.owner'], { gitDir: replica })).stdout.toString().trim(), 'Bob');
});

test('a served bundle whose bytes differ from its index is rejected before git reads it; the repository keeps its state', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const before = await showRefOf(join(toplevel, 'pub/sub/beta.git'));
  await breakBeta(origin); // a push whose incremental is served with one byte flipped inside the pack
  const r = await pullJson(['-c', config]);
  t.is(r.code, 1);
  t.like(repoIn(r.report, '/pub/sub/beta.git'), { action: 'failed', error: { code: 'E_BUNDLE_VERIFY' } });
  t.is(r.report.exitStatus, 1);
  t.is(await showRefOf(join(toplevel, 'pub/sub/beta.git')), before, 'refs untouched');
  const local = await readManifestFile(join(toplevel, 'manifest.js.gz'));
  const published = await readManifestFile(join(origin.out, 'manifest.js.gz'));
  t.not(local['/pub/sub/beta.git']?.fingerprint, published['/pub/sub/beta.git']?.fingerprint);
  t.is(
    local['/pub/sub/beta.git']?.fingerprint,
    await fingerprintOf(join(toplevel, 'pub/sub/beta.git')),
    'the local manifest keeps what the replica holds',
  );
  const alpha = await stat(join(toplevel, 'pub/alpha.git'));
  t.truthy(alpha, 'other repositories unaffected');
  // the failed repository is retried on the next run even though the manifest did not change
  const again = await pullJson(['-c', config]);
  t.is(again.code, 1);
  t.like(repoIn(again.report, '/pub/sub/beta.git'), { action: 'failed' });
});

test('a fresh clone whose bundle is truncated leaves no repository behind', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  const index = parseRepoIndex(await readFile(join(origin.out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  const file = join(origin.out, 'pub/sub/beta.git', index.bundles[0]!.uri);
  await writeFile(file, (await readFile(file)).subarray(0, 100));
  const r = await pullJson(['-c', config]);
  t.is(r.code, 1);
  t.like(repoIn(r.report, '/pub/sub/beta.git'), { action: 'failed' });
  await t.throwsAsync(stat(join(toplevel, 'pub/sub/beta.git')));
  await assertInSync(t, origin, toplevel, ['/pub/alpha.git', '/pub/forks/alpha-fork.git']);
});

test('an origin without bundles (plain grokmirror: manifest and git only) still mirrors, through git fetch', async (t) => {
  const origin = await startOrigin(t);
  for (const p of PATHS) await rm(join(origin.out, p), { recursive: true, force: true });
  const { config, toplevel } = await replicaFor(origin);
  const r = await pullJson(['-c', config]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { cloned: 3 });
  for (const p of PATHS) t.like(repoIn(r.report, p), { action: 'cloned', via: 'fetch' });
  await assertInSync(t, origin, toplevel);
});

test('a replica whose state.json an earlier bundlemirror wrote (version 1, no journal) keeps working after the upgrade', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  // what the earlier version kept: the whole state in one file
  const dir = join(toplevel, '.bundlemirror');
  const recorded = await recordedState(toplevel);
  const validators = await (await openState(toplevel)).manifestValidators(origin.server.url + '/manifest.js.gz');
  t.truthy(validators);
  for (const n of await readdir(dir)) if (n.endsWith('.journal')) await rm(join(dir, n));
  await writeFile(
    join(dir, 'state.json'),
    JSON.stringify({ version: 1, repos: recorded, manifest: validators }, null, 1) + '\n',
  );
  const quiet = await pullJson(['-c', config]);
  t.is(quiet.code, 0, quiet.stderr);
  t.true(quiet.report.manifest.unchanged, 'its validators still answer 304');
  t.is(quiet.report.counts.unchanged, 3);
  await origin.repos['/pub/alpha.git']!.wt.commit('after the upgrade');
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish();
  const r = await pullJson(['-c', config]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { cloned: 0, updated: 1, unchanged: 2 });
  t.is(await fingerprintOf(join(toplevel, 'pub/alpha.git')), await fingerprintOf(origin.repos['/pub/alpha.git']!.bare));
  t.is(JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')).version, 2, 'rewritten by its first change');
  t.deepEqual(Object.keys(await recordedState(toplevel)).sort(), PATHS);
});

test('deleting the state file breaks nothing: the next run rebuilds it from the repositories', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  await rm(join(toplevel, '.bundlemirror/state.json'));
  const r = await pullJson(['-c', config]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { cloned: 0, updated: 0, unchanged: 3 });
  t.deepEqual(Object.keys(await recordedState(toplevel)).sort(), PATHS);
});
