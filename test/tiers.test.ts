import test from 'ava';
import { copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { fingerprintOf, pull, startOrigin } from './support/mirror.js';
import { makeSigningKey } from './support/keys.js';
import { loadPullConfig } from '../src/replica/config/config.js';
import { pull as pullOnce } from '../src/replica/pull.js';
import { showRefOf } from './support/repos.js';
import { gitText } from '../src/git/exec.js';
import { commitLfsFile, hasGitLfs, startLfsOrigin, writerWorkTree } from './support/lfs.js';
import { runCli } from './support/cli.js';
import { lfsObjectPath } from '../src/lfs/oid.js';
import { createHash } from 'node:crypto';

const REPOS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

interface Tier {
  config: string;
  toplevel: string;
  out: string;
}

async function tierConfig(
  dir: string,
  name: string,
  upstream: string,
  opts: { allowedSigners?: string; out?: boolean; pull?: string } = {},
): Promise<Tier> {
  const toplevel = join(dir, name);
  const out = join(dir, `${name}-published`);
  await mkdir(toplevel, { recursive: true });
  const config = join(dir, `${name}.conf`);
  await writeFile(
    config,
    `[core]\ntoplevel = ${toplevel}\n\n[remote]\nsite = ${upstream}/git\nmanifest = ${upstream}/manifest.js.gz\n` +
      (opts.allowedSigners ? `allowed_signers = ${opts.allowedSigners}\n` : '') +
      `\n[pull]\npull_threads = 2\n${opts.pull ?? ''}\n` +
      (opts.out ? `[publish]\nout = ${out}\n` : ''),
  );
  return { config, toplevel, out };
}

async function serveTier(t: { teardown: (fn: () => Promise<void>) => void }, tier: Tier): Promise<RunningServer> {
  const server = await startServer({
    bundles: tier.out,
    toplevel: tier.toplevel,
    host: '127.0.0.1',
    port: 0,
    log: false,
  });
  t.teardown(() => server.close());
  return server;
}

async function fingerprints(toplevel: string, repos = REPOS): Promise<Record<string, string>> {
  return Object.fromEntries(
    await Promise.all(repos.map(async (p) => [p, await fingerprintOf(join(toplevel, p))] as const)),
  );
}

/** Every published file (dotfiles are a tree's own bookkeeping), by path relative to the root. */
async function publishedFiles(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const rel = relative(root, join(entry.parentPath, entry.name));
    if (rel.split('/').some((s) => s.startsWith('.'))) continue;
    files.set(rel, await readFile(join(root, rel)));
  }
  return files;
}

async function servedBytes(server: RunningServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^bundlemirror_serve_response_bytes_total (\d+)/m.exec(text)![1]);
}

async function signedOrigin(t: Parameters<typeof startOrigin>[0]) {
  const origin = await startOrigin(t, { bigBytes: 64 << 10 });
  const key = await makeSigningKey(origin.dir, 'origin');
  await origin.publish('--sign-key', key.key);
  return { origin, key };
}

async function bundleBytes(out: string): Promise<number> {
  let total = 0;
  for (const [name, bytes] of await publishedFiles(out)) if (name.endsWith('.bundle')) total += bytes.length;
  return total;
}

test('origin -> tier 1 -> tier 2: tier 1 serves byte-identical files, downloaded once, and tier 2 verifies every fingerprint with the origin stopped', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const tier1 = await tierConfig(origin.dir, 'tier1', origin.server.url, {
    allowedSigners: key.allowedSigners,
    out: true,
  });
  const before = await servedBytes(origin.server);
  const r1 = await pull(tier1.config);
  t.is(r1.code, 0, r1.stderr);
  // the bundles tier 1's own sync fetched are linked into its copy, not fetched again
  const wire = (await servedBytes(origin.server)) - before;
  const bundles = await bundleBytes(origin.out);
  t.log(`tier 1 pull: the origin sent ${wire} bytes for ${bundles} bytes of bundles (${(wire / bundles).toFixed(3)}x)`);
  t.true(wire < bundles * 1.1, `origin sent ${wire} bytes for ${bundles} bytes of bundles`);

  const originFiles = await publishedFiles(origin.out);
  const copied = await publishedFiles(tier1.out);
  t.deepEqual([...copied.keys()].sort(), [...originFiles.keys()].sort());
  for (const [name, bytes] of originFiles) t.true(bytes.equals(copied.get(name)!), `${name} is byte-identical`);

  const server1 = await serveTier(t, tier1);
  await origin.server.close({ graceMs: 0 });
  const tier2 = await tierConfig(origin.dir, 'tier2', server1.url, { allowedSigners: key.allowedSigners });
  const r2 = await pull(tier2.config);
  t.is(r2.code, 0, r2.stderr);
  t.deepEqual(await fingerprints(tier2.toplevel), await fingerprints(origin.toplevel));
  // tier 1 serves its repositories over smart HTTP too, for git clients and the next tier's git fetch
  const remote = await gitText(['ls-remote', `${server1.url}/git/pub/sub/beta.git`]);
  const advertised = remote
    .split('\n')
    .filter((l) => l.includes('\trefs/') && !l.endsWith('^{}'))
    .map((l) => l.replace('\t', ' ') + '\n');
  t.is(advertised.join(''), await showRefOf(join(origin.toplevel, 'pub/sub/beta.git')));
});

test('an update at the origin reaches tier 2 through tier 1, whose copy keeps the whole chain', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const tier1 = await tierConfig(origin.dir, 'tier1', origin.server.url, {
    allowedSigners: key.allowedSigners,
    out: true,
  });
  t.is((await pull(tier1.config)).code, 0);
  const server1 = await serveTier(t, tier1);
  const tier2 = await tierConfig(origin.dir, 'tier2', server1.url, { allowedSigners: key.allowedSigners });
  t.is((await pull(tier2.config)).code, 0);

  await origin.repos['/pub/alpha.git']!.wt.commit('second', 32 << 10);
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish('--sign-key', key.key);
  t.is((await pull(tier1.config)).code, 0);
  const index = parseRepoIndex(await readFile(join(tier1.out, 'pub/alpha.git/index.json')), '/pub/alpha.git');
  t.is(index.bundles.length, 2, 'base and incremental');
  for (const b of index.bundles) t.is((await stat(join(tier1.out, 'pub/alpha.git', b.uri))).size, b.size);
  const r2 = await pull(tier2.config);
  t.is(r2.code, 0, r2.stderr);
  t.deepEqual(await fingerprints(tier2.toplevel), await fingerprints(origin.toplevel));
});

test('tampering on tier 1: a changed ref in one index.json, then a replayed older manifest, each refused by tier 2, which keeps its state and exits 1', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const tier1 = await tierConfig(origin.dir, 'tier1', origin.server.url, {
    allowedSigners: key.allowedSigners,
    out: true,
  });
  t.is((await pull(tier1.config)).code, 0);
  const server1 = await serveTier(t, tier1);
  const tier2 = await tierConfig(origin.dir, 'tier2', server1.url, { allowedSigners: key.allowedSigners });
  t.is((await pull(tier2.config)).code, 0);
  const oldManifest = await readFile(join(tier1.out, 'manifest.js.gz'));
  const oldSignature = await readFile(join(tier1.out, 'manifest.js.gz.sig'));

  for (const p of ['/pub/alpha.git', '/pub/sub/beta.git']) {
    await origin.repos[p]!.wt.commit('more');
    await origin.repos[p]!.wt.push('main');
  }
  await origin.publish('--sign-key', key.key);
  t.is((await pull(tier1.config)).code, 0);
  const held = await fingerprints(tier2.toplevel);

  // 1. one ref in beta's index.json on tier 1 points elsewhere; its signature is the origin's
  const betaIndex = join(tier1.out, 'pub/sub/beta.git/index.json');
  const text = await readFile(betaIndex, 'utf8');
  const devel = /"refs\/heads\/devel": "([0-9a-f]{40})"/.exec(text)![1]!;
  await writeFile(betaIndex, text.replace(/"refs\/heads\/main": "[0-9a-f]{40}"/, `"refs/heads/main": "${devel}"`));
  const tampered = await pull(tier2.config);
  t.is(tampered.code, 1);
  t.regex(tampered.stderr, /\/pub\/sub\/beta\.git: .*\[E_SIGNATURE_INVALID\]/);
  const after = await fingerprints(tier2.toplevel);
  t.is(after['/pub/sub/beta.git'], held['/pub/sub/beta.git'], 'beta keeps its previous refs');
  t.is(
    after['/pub/alpha.git'],
    await fingerprintOf(join(origin.toplevel, 'pub/alpha.git')),
    'alpha, untouched on tier 1, is updated',
  );

  // 2. tier 1 replays the older signed manifest, signature and all
  await writeFile(betaIndex, text);
  await copyFile(join(tier1.out, 'manifest.js.gz'), join(origin.dir, 'newer-manifest.js.gz'));
  await writeFile(join(tier1.out, 'manifest.js.gz.sig'), oldSignature);
  await writeFile(join(tier1.out, 'manifest.js.gz'), oldManifest);
  const replayed = await pull(tier2.config);
  t.is(replayed.code, 1);
  t.regex(replayed.stderr, /\[E_ROLLBACK\]/);
  t.deepEqual(await fingerprints(tier2.toplevel), after, 'nothing moved');
});

test('a tier that mirrors a part serves a manifest of that part, unsigned, with the signed indexes of what it holds', async (t) => {
  const { origin, key } = await signedOrigin(t);
  const tier1 = await tierConfig(origin.dir, 'tier1', origin.server.url, {
    allowedSigners: key.allowedSigners,
    out: true,
    pull: 'exclude = /pub/sub/*\n',
  });
  t.is((await pull(tier1.config)).code, 0);
  await t.throwsAsync(stat(join(tier1.out, 'manifest.js.gz.sig')));
  await t.throwsAsync(stat(join(tier1.out, 'pub/sub/beta.git/index.json')));
  t.true(
    (await readFile(join(tier1.out, 'pub/alpha.git/index.json.sig'))).equals(
      await readFile(join(origin.out, 'pub/alpha.git/index.json.sig')),
    ),
  );

  const server1 = await serveTier(t, tier1);
  const strict = await tierConfig(origin.dir, 'strict', server1.url, { allowedSigners: key.allowedSigners });
  const refused = await pull(strict.config);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /\[E_SIGNATURE_MISSING\]/);
  const plain = await tierConfig(origin.dir, 'plain', server1.url);
  const r = await pull(plain.config);
  t.is(r.code, 0, r.stderr);
  const two = ['/pub/alpha.git', '/pub/forks/alpha-fork.git'];
  t.deepEqual(await fingerprints(plain.toplevel, two), await fingerprints(origin.toplevel, two));
});

test("LFS objects the origin publishes are in the tier copy too, linked from the tier's own store rather than downloaded twice", async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const wt = await writerWorkTree(o, 'alice');
  const body = await commitLfsFile(o.client, wt, 'asset.bin', 200_000);
  const pushed = await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: wt });
  t.is(pushed.code, 0, pushed.stderr);
  const key = await makeSigningKey(o.dir, 'origin');
  const published = await runCli(['publish', '--toplevel', o.toplevel, '--out', o.out, '--sign-key', key.key]);
  t.is(published.code, 0, published.stderr);

  const tier1 = await tierConfig(o.dir, 'tier1', o.server.url, { allowedSigners: key.allowedSigners, out: true });
  const r = await pull(tier1.config);
  t.is(r.code, 0, r.stderr);
  const originFiles = await publishedFiles(o.out);
  const copied = await publishedFiles(tier1.out);
  t.deepEqual([...copied.keys()].sort(), [...originFiles.keys()].sort());
  for (const [name, bytes] of originFiles) t.true(bytes.equals(copied.get(name)!), `${name} is byte-identical`);
  const oid = createHash('sha256').update(body).digest('hex');
  const inCopy = await stat(lfsObjectPath(join(tier1.out, 'pub/assets.git'), oid));
  const inStore = await stat(lfsObjectPath(join(tier1.toplevel, 'pub/assets.git'), oid));
  t.is(inCopy.ino, inStore.ino, 'one file for the replica and its copy');
});

test("the tier copy is garbage-collected as the origin's tree: files of a repository gone from the manifest go after grace_days", async (t) => {
  const { origin, key } = await signedOrigin(t);
  const tier1 = await tierConfig(origin.dir, 'tier1', origin.server.url, {
    allowedSigners: key.allowedSigners,
    out: true,
  });
  await writeFile(tier1.config, (await readFile(tier1.config, 'utf8')) + 'grace_days = 0\n');
  t.is((await pull(tier1.config)).code, 0);
  t.truthy(await stat(join(tier1.out, 'pub/sub/beta.git/index.json.sig')));
  await rm(join(origin.toplevel, 'pub/sub/beta.git'), { recursive: true, force: true });
  await origin.publish('--sign-key', key.key);
  const r = await pull(tier1.config);
  t.is(r.code, 0, r.stderr);
  const left = [...(await publishedFiles(tier1.out)).keys()];
  t.deepEqual(
    left.filter((f) => f.startsWith('pub/sub/')),
    [],
    'index, signature, bundle-list and bundles of beta are gone',
  );
  t.true(
    (await readFile(join(tier1.out, 'manifest.js.gz'))).equals(await readFile(join(origin.out, 'manifest.js.gz'))),
  );
});

test("a notified run of one repository updates the copy's manifest as soon as every repository's copy is at its fingerprint", async (t) => {
  const { origin, key } = await signedOrigin(t);
  const tier1 = await tierConfig(origin.dir, 'tier1', origin.server.url, {
    allowedSigners: key.allowedSigners,
    out: true,
  });
  t.is((await pull(tier1.config)).code, 0);
  await origin.repos['/pub/alpha.git']!.wt.commit('pushed');
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish('--sign-key', key.key);
  const lines: string[] = [];
  const log = {
    info: (m: string) => lines.push(m),
    debug: () => {},
    warn: (m: string) => lines.push(m),
    error: (m: string) => lines.push(m),
    flush: async () => {},
  };
  const report = await pullOnce(loadPullConfig(tier1.config), { log, only: ['/pub/alpha.git'] });
  t.deepEqual(report.failed, [], lines.join('\n'));
  t.deepEqual(report.updated, ['/pub/alpha.git']);
  for (const f of [
    'manifest.js.gz',
    'manifest.js.gz.sig',
    'pub/alpha.git/index.json',
    'pub/alpha.git/index.json.sig',
  ]) {
    t.true((await readFile(join(tier1.out, f))).equals(await readFile(join(origin.out, f))), f);
  }
});
