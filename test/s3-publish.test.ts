/**
 * publish into an S3-compatible store (s3rver on 127.0.0.1): the tree as a
 * directory publish writes it, uploaded in publish order, read by a replica
 * over plain HTTP with Range from the store's endpoint.
 */
import test, { type ExecutionContext } from 'ava';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeRepo, tempDir, type WorkTree } from './support/repos.js';
import { runCli } from './support/cli.js';
import { fingerprintOf, pull, writeConfig } from './support/mirror.js';
import { readManifestFile } from '../src/manifest/manifest.js';
import { startStore, puts, type TestStore } from './support/s3.js';
import { startFaultProxy } from './support/fault-proxy.js';

const PREFIX = 'git';
const TARGET = `s3://mirrors/${PREFIX}`;

interface World {
  dir: string;
  toplevel: string;
  state: string;
  store: TestStore;
  repos: Record<string, { bare: string; wt: WorkTree }>;
  publish(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

async function world(t: ExecutionContext, opts: { bigBytes?: number } = {}): Promise<World> {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const store = await startStore(t);
  const toplevel = join(dir, 'origin');
  const alpha = await makeRepo(dir, toplevel, 'pub/alpha.git', { commits: 3, bytesPerCommit: opts.bigBytes ?? 0 });
  const beta = await makeRepo(dir, toplevel, 'pub/sub/beta.git', { commits: 2 });
  const state = join(dir, 'state');
  return {
    dir,
    toplevel,
    state,
    store,
    repos: { '/pub/alpha.git': alpha, '/pub/sub/beta.git': beta },
    publish: (...args) =>
      runCli(['publish', '--toplevel', toplevel, '--bundles', TARGET, '--state', state, '--s3-path-style', ...args], {
        env: store.env(),
      }),
  };
}

async function replica(w: World, name: string, base = w.store.publicUrl(PREFIX)) {
  const toplevel = join(w.dir, name);
  const config = await writeConfig(w.dir, {
    toplevel,
    manifest: `${base}/manifest.js.gz`,
    site: `${base}/git`,
    name: `${name}.conf`,
  });
  return { config, toplevel };
}

async function fingerprintsMatch(t: ExecutionContext, w: World, toplevel: string, paths = Object.keys(w.repos)) {
  for (const p of paths) {
    t.is(await fingerprintOf(join(toplevel, p)), await fingerprintOf(w.repos[p]!.bare), p);
  }
}

test('publish to s3://: every file of the tree in the store with its cache headers; a replica pulls it over HTTP', async (t) => {
  const w = await world(t);
  const r = await w.publish();
  t.is(r.code, 0, r.stderr);
  // the store holds exactly the tree, byte for byte
  const manifest = await readManifestFile(join(w.state, 'manifest.js.gz'));
  t.deepEqual(Object.keys(manifest).sort(), ['/pub/alpha.git', '/pub/sub/beta.git']);
  for (const p of Object.keys(manifest)) {
    for (const f of ['index.json', 'bundle-list']) {
      const local = await readFile(join(w.state, p.slice(1), f));
      t.deepEqual(await w.store.get(`${PREFIX}${p}/${f}`), local, `${p}/${f}`);
    }
  }
  const alphaIndex = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  const bundle = alphaIndex.bundles[0];
  t.is(await w.store.sha256(`${PREFIX}/pub/alpha.git/${bundle.uri}`), bundle.sha256);
  const head = await fetch(`${w.store.publicUrl(PREFIX)}/pub/alpha.git/${bundle.uri}`, { method: 'HEAD' });
  t.is(head.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  const doc = await fetch(`${w.store.publicUrl(PREFIX)}/manifest.js.gz`, { method: 'HEAD' });
  t.is(doc.headers.get('cache-control'), 'no-cache');
  t.is(doc.headers.get('content-type'), 'application/gzip');
  // publish order: every bundle before any document, the manifest last
  const order = puts(w.store.requests).map((q) => q.key);
  const lastBundle = Math.max(...order.map((k, i) => (k.endsWith('.bundle') ? i : -1)));
  const firstDoc = order.findIndex((k) => !k.endsWith('.bundle'));
  t.true(lastBundle < firstDoc, order.join(' '));
  t.is(order.at(-1), `${PREFIX}/manifest.js.gz`);
  // no listing of the bucket, ever
  t.false(w.store.requests.some((q) => q.method === 'GET' && (q.key === '' || q.key === PREFIX)));

  const rep = await replica(w, 'replica');
  const p = await pull(rep.config);
  t.is(p.code, 0, p.stderr);
  await fingerprintsMatch(t, w, rep.toplevel);
});

test('a replica resumes bundle downloads from the store across a link cut every 200 KB', async (t) => {
  const w = await world(t, { bigBytes: 400_000 });
  t.is((await w.publish()).code, 0);
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: Number(new URL(w.store.endpoint).port) },
    cutAfterBytes: 200_000,
  });
  t.teardown(() => proxy.close());
  const rep = await replica(w, 'replica', `${proxy.url('')}/mirrors/${PREFIX}`);
  const p = await pull(rep.config);
  t.is(p.code, 0, p.stderr);
  await fingerprintsMatch(t, w, rep.toplevel);
  t.true(proxy.stats.cuts > 0);
  const index = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  const bundleBytes = index.bundles.reduce((n: number, b: { size: number }) => n + b.size, 0);
  // resumed from the byte where each cut stopped: the big bundle crosses the wire about once
  t.true(proxy.stats.bytesDownstream < bundleBytes * 1.3, `${proxy.stats.bytesDownstream} B for ${bundleBytes} B`);
});

test('an incremental publish uploads the new bundle and the changed documents, nothing else', async (t) => {
  const w = await world(t);
  t.is((await w.publish()).code, 0);
  const alpha = w.repos['/pub/alpha.git']!;
  await alpha.wt.commit('one more');
  await alpha.wt.push('main');
  w.store.requests.length = 0;
  const r = await w.publish();
  t.is(r.code, 0, r.stderr);
  const put = puts(w.store.requests);
  const keys = put.map((q) => q.key.replace(/[0-9a-f]{64}\.bundle$/, '<sha256>.bundle'));
  t.deepEqual(keys.sort(), [
    `${PREFIX}/manifest.js.gz`,
    `${PREFIX}/pub/alpha.git/<sha256>.bundle`,
    `${PREFIX}/pub/alpha.git/bundle-list`,
    `${PREFIX}/pub/alpha.git/index.json`,
  ]);
  const index = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  const incremental = index.bundles.at(-1);
  const bundlePut = put.find((q) => q.key.endsWith('.bundle'))!;
  t.is(bundlePut.key, `${PREFIX}/pub/alpha.git/${incremental.uri}`);
  t.is(bundlePut.bodyBytes, incremental.size);
  t.log(`one-commit publish: ${put.reduce((n, q) => n + q.bodyBytes, 0)} B uploaded in ${put.length} PUTs`);
  // a publish with nothing new sends nothing
  w.store.requests.length = 0;
  t.is((await w.publish()).code, 0);
  t.deepEqual(puts(w.store.requests), []);
  // the record of what the store holds lost: bundles are looked up (HEAD), not sent again
  await rm(join(w.state, '.store-state.json'), { force: true });
  await rm(join(w.state, '.store-state.log'), { force: true });
  w.store.requests.length = 0;
  t.is((await w.publish()).code, 0);
  t.false(
    puts(w.store.requests).some((q) => q.key.endsWith('.bundle')),
    puts(w.store.requests)
      .map((q) => q.key)
      .join(' '),
  );
  t.true(w.store.requests.some((q) => q.method === 'HEAD' && q.key.endsWith('.bundle')));
});

test('gc on an s3:// target deletes from the store only what no index referenced for the grace period', async (t) => {
  const w = await world(t);
  t.is((await w.publish()).code, 0);
  const oldIndex = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  const oldBase = `${PREFIX}/pub/alpha.git/${oldIndex.bundles[0].uri}`;
  // a chain allowed no incremental: the push brings a new base, the old one is superseded
  const alpha = w.repos['/pub/alpha.git']!;
  await alpha.wt.commit('one more');
  await alpha.wt.push('main');
  t.is((await w.publish('--max-incrementals', '0')).code, 0);
  const grace = String(1 / 86_400); // one second, in days
  await sleep(1100);
  // the grace period of the listing is over: the index drops the old base, gc starts counting
  t.is((await w.publish('--max-incrementals', '0', '--grace-days', grace)).code, 0);
  t.truthy(await w.store.get(oldBase), 'unreferenced for less than the grace period: still in the store');
  const gc = (...args: string[]) =>
    runCli(['gc', '--bundles', TARGET, '--state', w.state, '--s3-path-style', ...args], { env: w.store.env() });
  t.is((await gc('--grace-days', '7')).code, 0);
  t.truthy(await w.store.get(oldBase));
  await sleep(1100);
  const r = await gc('--grace-days', grace);
  t.is(r.code, 0, r.stderr);
  t.is(await w.store.get(oldBase), null);
  const index = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  for (const b of index.bundles)
    t.is(await w.store.sha256(`${PREFIX}/pub/alpha.git/${b.uri}`), b.sha256, 'every listed bundle stays');
  const rep = await replica(w, 'replica');
  t.is((await pull(rep.config)).code, 0);
  await fingerprintsMatch(t, w, rep.toplevel);
});

test('publish -c: [publish] bundles = s3://..., state and s3_path_style set the store target', async (t) => {
  const w = await world(t);
  const config = join(w.dir, 'publish.conf');
  await writeFile(
    config,
    `[publish]\ntoplevel = ${w.toplevel}\nbundles = ${TARGET}\nstate = ${w.state}\ns3_path_style = yes\nquiet = yes\n`,
  );
  const r = await runCli(['publish', '-c', config], { env: w.store.env() });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await w.store.get(`${PREFIX}/manifest.js.gz`), await readFile(join(w.state, 'manifest.js.gz')));
  const rep = await replica(w, 'replica');
  t.is((await pull(rep.config)).code, 0);
  await fingerprintsMatch(t, w, rep.toplevel);
});
