/**
 * publish into an S3-compatible store when things go wrong: a publish
 * killed between its bundles and its manifest, a large bundle's multipart
 * upload killed half-way, and a store that refuses (credentials, bucket,
 * endpoint). The store is s3rver on 127.0.0.1 behind a recording proxy
 * that can hold a request back, which is how each test stops a real CLI
 * process at an exact point of its upload order (and, for one test,
 * answers ListParts, which s3rver lacks, from s3rver's own files).
 */
import test, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRepo, tempDir } from './support/repos.js';
import { runCli, startCli } from './support/cli.js';
import { fingerprintOf, pull, writeConfig } from './support/mirror.js';
import { startStore, puts } from './support/s3.js';

const PREFIX = 'git';

async function world(t: ExecutionContext, opts: { bigBytes?: number; listParts?: boolean } = {}) {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const store = await startStore(t, { listParts: !!opts.listParts });
  const toplevel = join(dir, 'origin');
  const alpha = await makeRepo(dir, toplevel, 'pub/alpha.git', { commits: 3, bytesPerCommit: opts.bigBytes ?? 0 });
  await makeRepo(dir, toplevel, 'pub/beta.git', { commits: 1 });
  const state = join(dir, 'state');
  const args = (target = `s3://mirrors/${PREFIX}`, ...more: string[]) => [
    'publish',
    '--toplevel',
    toplevel,
    '--bundles',
    target,
    '--state',
    state,
    '--s3-path-style',
    ...more,
  ];
  const base = store.publicUrl(PREFIX);
  const config = await writeConfig(dir, {
    toplevel: join(dir, 'replica'),
    manifest: `${base}/manifest.js.gz`,
    site: `${base}/git`,
  });
  return { dir, toplevel, state, store, alpha, args, replica: { config, toplevel: join(dir, 'replica') } };
}

test('a publish killed between its bundles and its manifest leaves the old tree valid; the rerun completes it', async (t) => {
  const w = await world(t);
  t.is((await runCli(w.args(), { env: w.store.env() })).code, 0);
  const oldManifest = await w.store.get(`${PREFIX}/manifest.js.gz`);
  const oldFingerprint = await fingerprintOf(w.alpha.bare);
  await w.alpha.wt.commit('new work');
  await w.alpha.wt.push('main');

  // the first document upload never gets an answer: every bundle is in the store by then
  w.store.hold((r) => r.method === 'PUT' && r.key.endsWith('/index.json'));
  const cli = startCli(t, w.args(), { env: w.store.env() });
  await w.store.held();
  cli.signal('SIGKILL');
  t.is((await cli.done).signal, 'SIGKILL');
  w.store.hold(null);
  t.deepEqual(await w.store.get(`${PREFIX}/manifest.js.gz`), oldManifest, 'the store still shows the old manifest');
  const index = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  const newBundle = index.bundles.at(-1);
  t.is(await w.store.sha256(`${PREFIX}/pub/alpha.git/${newBundle.uri}`), newBundle.sha256);

  // a replica reading now gets the old tree, whole
  const first = await pull(w.replica.config);
  t.is(first.code, 0, first.stderr);
  t.is(await fingerprintOf(join(w.replica.toplevel, 'pub/alpha.git')), oldFingerprint);

  w.store.requests.length = 0;
  const rerun = await runCli(w.args(), { env: w.store.env() });
  t.is(rerun.code, 0, rerun.stderr);
  const sent = puts(w.store.requests).map((q) => q.key);
  t.false(
    sent.some((k) => k.endsWith('.bundle')),
    `the bundle recorded as uploaded is not sent again: ${sent.join(' ')}`,
  );
  t.is(sent.at(-1), `${PREFIX}/manifest.js.gz`);
  const second = await pull(w.replica.config);
  t.is(second.code, 0, second.stderr);
  t.is(await fingerprintOf(join(w.replica.toplevel, 'pub/alpha.git')), await fingerprintOf(w.alpha.bare));
});

const multipartResume = test.macro(async (t, listParts: boolean) => {
  const w = await world(t, { bigBytes: 400_000, listParts });
  const partSize = 256 * 1024;
  w.store.hold((r) => r.method === 'PUT' && r.query.get('partNumber') === '3');
  const cli = startCli(t, w.args(undefined, '--s3-part-size', String(partSize)), { env: w.store.env() });
  const held = await w.store.held();
  cli.signal('SIGKILL');
  await cli.done;
  w.store.hold(null);
  const firstParts = puts(w.store.requests)
    .filter((q) => q.key === held.key && q.query.has('partNumber'))
    .map((q) => Number(q.query.get('partNumber')));
  t.deepEqual(firstParts, [1, 2]);
  t.is(await w.store.get(`${PREFIX}/manifest.js.gz`), null, 'nothing is visible before the manifest');
  // where the store lists an upload's parts, the list decides: a part it lost is sent again
  if (listParts) await w.store.dropPart(held.query.get('uploadId')!, 2);

  w.store.requests.length = 0;
  const rerun = await runCli(w.args(undefined, '--s3-part-size', String(partSize)), { env: w.store.env() });
  t.is(rerun.code, 0, rerun.stderr);
  const again = puts(w.store.requests).filter((q) => q.key === held.key);
  const index = JSON.parse(await readFile(join(w.state, 'pub/alpha.git/index.json'), 'utf8'));
  const bundle = index.bundles[0];
  const count = Math.ceil(bundle.size / partSize);
  t.true(count >= 4, `${bundle.size} B in ${count} parts`);
  const first = listParts ? 2 : 3;
  t.deepEqual(
    again.map((q) => Number(q.query.get('partNumber'))),
    Array.from({ length: count - first + 1 }, (_, i) => i + first),
  );
  t.is(
    w.store.requests.some((q) => q.method === 'GET' && q.query.has('uploadId')),
    true,
    'the rerun asks the store for the parts it holds',
  );
  t.false(
    w.store.requests.some((q) => q.method === 'POST' && q.query.has('uploads')),
    'the same upload, resumed',
  );
  t.is(await w.store.sha256(`${PREFIX}/pub/alpha.git/${bundle.uri}`), bundle.sha256);
  const p = await pull(w.replica.config);
  t.is(p.code, 0, p.stderr);
  t.is(await fingerprintOf(join(w.replica.toplevel, 'pub/alpha.git')), await fingerprintOf(w.alpha.bare));
});

test(
  'a multipart upload killed after two parts resumes with the third (s3rver cannot list parts: the recorded ones count)',
  multipartResume,
  false,
);
test(
  'a multipart upload killed after two parts resumes from what the store lists (a part it lost is sent again)',
  multipartResume,
  true,
);

test('store errors carry their code, the bucket and the exit status of a configuration error; nothing is published', async (t) => {
  const w = await world(t);
  const cases: [string, string[], Record<string, string>, string, number][] = [
    ['unknown access key', w.args(), { AWS_ACCESS_KEY_ID: 'NOBODY' }, 'E_STORE_AUTH', 2],
    ['no credentials', w.args(), { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }, 'E_STORE_AUTH', 2],
    ['no such bucket', w.args('s3://no-such-bucket/git'), {}, 'E_STORE_BUCKET', 2],
    ['endpoint unreachable', w.args(), { AWS_ENDPOINT_URL: 'http://127.0.0.1:1' }, 'E_STORE', 1],
  ];
  for (const [what, args, env, code, status] of cases) {
    const r = await runCli(args, { env: w.store.env(env) });
    t.is(r.code, status, `${what}: ${r.stderr}`);
    t.true(r.stderr.includes(`[${code}]`), `${what}: ${r.stderr}`);
    t.regex(r.stderr, /s3:\/\/(mirrors|no-such-bucket)|no-such-bucket/, what);
    t.regex(r.stderr, /hint: /, what);
  }
  t.is(await w.store.get(`${PREFIX}/manifest.js.gz`), null);
  t.false(w.store.requests.some((q) => q.method === 'PUT'));
});
