import test from 'ava';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPullConfig } from '../src/replica/config/config.js';
import { replicaStatus } from '../src/replica/status.js';
import { renderMetrics } from '../src/replica/metrics.js';
import { renderStatusTable } from '../src/cli/status.js';
import { fingerprintOf, pull, startOrigin, type Origin } from './support/mirror.js';
import { makeSigningKey, type SigningKey } from './support/keys.js';
import { tempDir } from './support/repos.js';
import { recordedState } from './support/state.js';
import { signBytes } from '../src/sign/ssh-keygen.js';
import { verifyFetched } from '../src/replica/trusted-documents.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const REPOS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

async function signedOrigin(t: Parameters<typeof startOrigin>[0]): Promise<{ origin: Origin; key: SigningKey }> {
  const origin = await startOrigin(t);
  const key = await makeSigningKey(origin.dir, 'origin');
  await origin.publish('--sign-key', key.key);
  return { origin, key };
}

async function replica(
  origin: Origin,
  name: string,
  allowedSigners: string,
  extra = '',
): Promise<{ config: string; toplevel: string }> {
  const toplevel = join(origin.dir, name);
  await mkdir(toplevel, { recursive: true });
  const config = join(origin.dir, `${name}.conf`);
  await writeFile(
    config,
    `[core]\ntoplevel = ${toplevel}\n\n[remote]\nsite = ${origin.server.url}/git\nmanifest = ${origin.server.url}/manifest.js.gz\n` +
      `allowed_signers = ${allowedSigners}\n${extra}\n[pull]\npull_threads = 2\n`,
  );
  return { config, toplevel };
}

async function fingerprints(toplevel: string): Promise<Record<string, string>> {
  return Object.fromEntries(
    await Promise.all(REPOS.map(async (p) => [p, await fingerprintOf(join(toplevel, p))] as const)),
  );
}

async function stateOf(toplevel: string) {
  return { repos: await recordedState(toplevel) };
}

test('a replica with allowed_signers pulls a signed tree and verifies every fingerprint', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const r = await replica(origin, 'replica', key.allowedSigners);
  const res = await pull(r.config);
  t.is(res.code, 0, res.stderr);
  t.deepEqual(await fingerprints(r.toplevel), await fingerprints(origin.toplevel));
});

test('an unsigned tree, or one signed by a key allowed_signers does not list, is refused whole and nothing is cloned', async (t) => {
  const origin = await startOrigin(t);
  const stranger = await makeSigningKey(origin.dir, 'stranger');
  const trusted = await makeSigningKey(origin.dir, 'trusted');
  const r = await replica(origin, 'replica', trusted.allowedSigners);
  const unsigned = await pull(r.config);
  t.is(unsigned.code, 1);
  t.regex(unsigned.stderr, /\[E_SIGNATURE_MISSING\]/);
  await origin.publish('--sign-key', stranger.key);
  const foreign = await pull(r.config);
  t.is(foreign.code, 1);
  t.regex(foreign.stderr, /\[E_SIGNATURE_UNTRUSTED\]/);
  await t.throwsAsync(stat(join(r.toplevel, 'pub')), undefined, 'no repository on disk');
  await t.throwsAsync(stat(join(r.toplevel, '.bundlemirror/remote-manifest.js.gz')), undefined, 'no manifest kept');
});

test('one changed ref in one index.json: that repository is refused with E_SIGNATURE_INVALID and keeps its refs; the others update', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const r = await replica(origin, 'replica', key.allowedSigners);
  t.is((await pull(r.config)).code, 0);
  const before = await fingerprints(r.toplevel);
  for (const p of ['/pub/alpha.git', '/pub/sub/beta.git']) {
    await origin.repos[p]!.wt.commit('more');
    await origin.repos[p]!.wt.push('main');
  }
  await origin.publish('--sign-key', key.key);
  const index = join(origin.out, 'pub/sub/beta.git/index.json');
  const text = await readFile(index, 'utf8');
  const devel = /"refs\/heads\/devel": "([0-9a-f]{40})"/.exec(text)![1]!;
  const main = /"refs\/heads\/main": "([0-9a-f]{40})"/.exec(text)![1]!;
  await writeFile(index, text.replace(`"refs/heads/main": "${main}"`, `"refs/heads/main": "${devel}"`));

  const res = await pull(r.config);
  t.is(res.code, 1);
  t.regex(res.stderr, /\/pub\/sub\/beta\.git: .*\[E_SIGNATURE_INVALID\]/);
  const after = await fingerprints(r.toplevel);
  t.is(after['/pub/sub/beta.git'], before['/pub/sub/beta.git'], 'beta keeps its previous refs');
  t.is(after['/pub/alpha.git'], await fingerprintOf(join(origin.toplevel, 'pub/alpha.git')), 'alpha is updated');
  t.is((await stateOf(r.toplevel)).repos['/pub/sub/beta.git']!.lastError?.code, 'E_SIGNATURE_INVALID');
});

test('a validly signed but older manifest replayed is refused with E_ROLLBACK, and the replica keeps what it has', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const r = await replica(origin, 'replica', key.allowedSigners);
  await copyFile(join(origin.out, 'manifest.js.gz'), join(origin.dir, 'old-manifest.js.gz'));
  await copyFile(join(origin.out, 'manifest.js.gz.sig'), join(origin.dir, 'old-manifest.js.gz.sig'));
  await origin.repos['/pub/alpha.git']!.wt.commit('newer');
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish('--sign-key', key.key);
  t.is((await pull(r.config)).code, 0);
  const held = await fingerprints(r.toplevel);
  const copy = await readFile(join(r.toplevel, '.bundlemirror/remote-manifest.js.gz'));

  // the host replays yesterday's signed tree (signature and all)
  await copyFile(join(origin.dir, 'old-manifest.js.gz'), join(origin.out, 'manifest.js.gz'));
  await copyFile(join(origin.dir, 'old-manifest.js.gz.sig'), join(origin.out, 'manifest.js.gz.sig'));
  const res = await pull(r.config);
  t.is(res.code, 1);
  t.regex(res.stderr, /\[E_ROLLBACK\]/);
  t.deepEqual(await fingerprints(r.toplevel), held);
  t.deepEqual(
    await readFile(join(r.toplevel, '.bundlemirror/remote-manifest.js.gz')),
    copy,
    'the accepted manifest copy is kept',
  );
});

test('key rotation: with both keys in allowed_signers, a tree signed by either is accepted', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const next = await makeSigningKey(origin.dir, 'next');
  const both = join(origin.dir, 'both.allowed_signers');
  await writeFile(both, `${key.signerLine}\n${next.signerLine}\n`);
  const r = await replica(origin, 'replica', both);
  t.is((await pull(r.config)).code, 0);
  await origin.repos['/pub/alpha.git']!.wt.commit('signed by the next key');
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish('--sign-key', next.key);
  const res = await pull(r.config);
  t.is(res.code, 0, res.stderr);
  t.deepEqual(await fingerprints(r.toplevel), await fingerprints(origin.toplevel));
});

test('status reports the accepted signed manifest and warns once it is older than manifest_max_age', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const r = await replica(origin, 'replica', key.allowedSigners, 'manifest_max_age = 2d\n');
  t.is((await pull(r.config)).code, 0);
  const config = loadPullConfig(r.config);
  const fresh = await replicaStatus(config, { sizes: false });
  t.is(fresh.manifest.signed?.principal, 'origin@example.org');
  t.false(fresh.manifest.signed?.stale);
  const later = await replicaStatus(config, { sizes: false, now: () => new Date(Date.now() + 3 * 86_400_000) });
  t.true(later.manifest.signed?.stale);
  t.regex(renderMetrics(later), /^bundlemirror_replica_signed_manifest_stale 1$/m);
  t.regex(renderStatusTable(later), /^WARNING: /m);
  t.notRegex(renderStatusTable(fresh), /^WARNING: /m);
  t.true(later.manifest.signed!.ageSeconds >= 3 * 86_400 - 60);
});

test('an older signed index.json replayed for one repository is refused with E_ROLLBACK; that repository keeps its refs', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const r = await replica(origin, 'replica', key.allowedSigners);
  t.is((await pull(r.config)).code, 0);
  const held = await fingerprints(r.toplevel);
  const dir = join(origin.out, 'pub/sub/beta.git');
  const oldIndex = await readFile(join(dir, 'index.json'));
  const oldSignature = await readFile(join(dir, 'index.json.sig'));
  await origin.repos['/pub/sub/beta.git']!.wt.commit('newer');
  await origin.repos['/pub/sub/beta.git']!.wt.push('main');
  await origin.publish('--sign-key', key.key);
  // the host serves the new signed manifest, but yesterday's signed index for beta
  await writeFile(join(dir, 'index.json.sig'), oldSignature);
  await writeFile(join(dir, 'index.json'), oldIndex);
  const res = await pull(r.config);
  t.is(res.code, 1);
  t.regex(res.stderr, /\/pub\/sub\/beta\.git: .*\[E_ROLLBACK\]/);
  t.is((await fingerprints(r.toplevel))['/pub/sub/beta.git'], held['/pub/sub/beta.git']);
});

test('a signature newer than its file (a publish between the two requests) is fetched again once and then accepted', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = await makeSigningKey(dir, 'origin');
  const older = Buffer.from('{"generation": 1}\n');
  const newer = Buffer.from('{"generation": 2}\n');
  const signature = await signBytes(key.key, newer);
  let documentRequests = 0;
  const server = createServer((req, res) => {
    if (req.url === '/doc.json.sig') return void res.end(signature);
    documentRequests += 1;
    res.end(documentRequests === 1 ? older : newer);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/doc.json`;
  const first = Buffer.from(await (await fetch(url)).arrayBuffer());
  t.true(first.equals(older));
  const verified = await verifyFetched(url, first, {
    allowedSigners: key.allowedSigners,
    what: 'index.json',
    maxBytes: 1 << 20,
  });
  t.true(verified.refetched);
  t.true(verified.body.equals(newer));
  t.is(verified.principal, 'origin@example.org');
  t.is(documentRequests, 2);
});

test('an allowed_signers file that is missing or lists no key is a configuration error (exit 2), not a signature refusal', async (t) => {
  const { origin } = await signedOrigin(t);
  const missing = await replica(origin, 'missing', join(origin.dir, 'no-such-file'));
  const r1 = await pull(missing.config);
  t.is(r1.code, 2);
  t.regex(r1.stderr, /\[E_CONFIG\]/);
  await writeFile(join(origin.dir, 'empty.allowed_signers'), '# nobody yet\n');
  const empty = await replica(origin, 'empty', join(origin.dir, 'empty.allowed_signers'));
  const r2 = await pull(empty.config);
  t.is(r2.code, 2);
  t.regex(r2.stderr, /\[E_CONFIG\]/);
});
