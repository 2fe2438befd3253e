import test from 'ava';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, truncate, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import tar from 'tar-stream';
import { git } from '../src/git/exec.js';
import { parseKitName, type Kit } from '../src/kit/kit-format.js';
import { planBundles } from '../src/replica/plan/bundle-plan.js';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { runCli } from './support/cli.js';
import { showRefOf } from './support/repos.js';
import { fingerprintOf, pull, replicaFor, startOrigin, type Origin } from './support/mirror.js';

const PATHS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

async function exportKit(args: string[]): Promise<string> {
  const r = await runCli(['export', ...args]);
  if (r.code !== 0) throw new Error(`export exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The entries of a tar, in order, with their bytes. */
async function entries(file: string): Promise<{ name: string; bytes: Buffer }[]> {
  const out: { name: string; bytes: Buffer }[] = [];
  const extract = tar.extract();
  const done = (async () => {
    for await (const e of extract) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.push({ name: e.header.name, bytes: Buffer.concat(chunks) });
    }
  })();
  extract.end(await readFile(file));
  await done;
  return out;
}

async function writeTar(file: string, items: { name: string; bytes: Buffer }[]): Promise<void> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const it of items) pack.entry({ name: it.name, size: it.bytes.length }, it.bytes);
  pack.finalize();
  await collected;
  await writeFile(file, Buffer.concat(chunks));
}

async function kitJson(file: string): Promise<Kit> {
  const first = (await entries(file))[0]!;
  return JSON.parse(first.bytes.toString('utf8')) as Kit;
}

async function assertMirrors(
  t: import('ava').ExecutionContext,
  origin: Origin,
  toplevel: string,
  paths = PATHS,
): Promise<void> {
  for (const p of paths) {
    t.is(
      await fingerprintOf(join(toplevel, p)),
      await fingerprintOf(join(origin.toplevel, p)),
      `${p}: fingerprint equals the origin's`,
    );
    const fsck = await git(['fsck', '--no-dangling'], { gitDir: join(toplevel, p), okCodes: [1, 2, 4, 8] });
    t.is(fsck.code, 0, `${p}: git fsck clean: ${fsck.stderr}`);
  }
}

async function noImportLeftovers(t: import('ava').ExecutionContext, toplevel: string): Promise<void> {
  t.deepEqual(
    (await readdir(join(toplevel, '.bundlemirror'))).filter((n) => n.startsWith('import-')),
    [],
    'the unpacked kit is removed',
  );
}

test('export then import into an empty replica with the origin down: every repository arrives, fingerprints equal the origin', async (t) => {
  const origin = await startOrigin(t);
  const kit = join(origin.dir, 'kit.tar');
  const out = await exportKit(['--bundles', origin.out, '--out', kit, '-q']);
  t.regex(out, /^wrote .*kit\.tar: 3 repositories, 0 unchanged, 0 left out; \d+ bundles .*sha256 [0-9a-f]{64}\n$/);

  // kit.json first, listing every later entry with its size and sha256
  const items = await entries(kit);
  const description = JSON.parse(items[0]!.bytes.toString('utf8')) as Kit;
  t.is(items[0]!.name, 'kit.json');
  t.like(description, { format: 'bundlemirror-kit', version: 1, since: { kind: 'nothing', location: null } });
  t.deepEqual(description.repos, PATHS);
  t.deepEqual(
    description.files.map((f) => f.name),
    items.slice(1).map((i) => i.name),
  );
  for (const [i, f] of description.files.entries()) {
    t.is(f.size, items[i + 1]!.bytes.length);
    t.is(
      f.sha256,
      createHash('sha256')
        .update(items[i + 1]!.bytes)
        .digest('hex'),
    );
  }
  t.is(items[1]!.name, 'manifest.js.gz');
  // the .sha256 file next to it checks the whole kit (for a download made in pieces)
  const sidecar = await readFile(`${kit}.sha256`, 'utf8');
  t.is(
    sidecar,
    `${createHash('sha256')
      .update(await readFile(kit))
      .digest('hex')}  kit.tar\n`,
  );

  const { config, toplevel } = await replicaFor(origin);
  await origin.server.close();
  const r = await runCli(['import', kit, '-c', config]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^cloned 3, updated 0, unchanged 0, failed 0;/);
  await assertMirrors(t, origin, toplevel);
  await noImportLeftovers(t, toplevel);

  // the replica's books are a pull's: status says in sync, the local manifest lists them
  const status = JSON.parse((await runCli(['status', '-c', config, '--json'])).stdout) as {
    counts: Record<string, number>;
  };
  t.like(status.counts, { 'in-sync': 3, total: 3 });
  const again = await runCli(['import', kit, '-c', config]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /cloned 0, updated 0, unchanged 3/);
});

test('a kit made --since a replica carries only what it lacks, and brings that replica up to date offline', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 50_000 });
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const before = await showRefOf(join(toplevel, 'pub/forks/alpha-fork.git'));

  for (const p of ['/pub/alpha.git', '/pub/sub/beta.git']) {
    await origin.repos[p]!.wt.commit('offline change');
    await origin.repos[p]!.wt.push('main');
  }
  await origin.publish();

  const byState = join(origin.dir, 'since-state.tar');
  await exportKit(['--bundles', origin.out, '--out', byState, '--since', toplevel, '-q']);
  const exact = await kitJson(byState);
  t.like(exact, { since: { kind: 'toplevel' } });
  t.deepEqual(exact.repos, ['/pub/alpha.git', '/pub/sub/beta.git'], 'the fork did not change: nothing to carry');
  const bundles = exact.files.filter((f) => f.name.endsWith('.bundle'));
  t.is(bundles.length, 2, 'one incremental per changed repository, no base');
  const carried = bundles.reduce((n, f) => n + f.size, 0);
  let chains = 0;
  for (const p of ['pub/alpha.git', 'pub/sub/beta.git']) {
    chains += parseRepoIndex(await readFile(join(origin.out, p, 'index.json')), `/${p}`).bundles.reduce(
      (n, b) => n + b.size,
      0,
    );
  }
  t.true(
    carried * 4 < chains,
    `incrementals (${carried} bytes) are far smaller than the whole chains (${chains} bytes)`,
  );

  const byManifest = join(origin.dir, 'since-manifest.tar');
  await exportKit(['--bundles', origin.out, '--out', byManifest, '--since', join(toplevel, 'manifest.js.gz'), '-q']);
  const byFingerprint = await kitJson(byManifest);
  t.deepEqual(byFingerprint.repos, ['/pub/alpha.git', '/pub/sub/beta.git']);

  await origin.server.close();
  const r = await runCli(['import', byState, '-c', config, '-v']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^cloned 0, updated 2, unchanged 0, failed 0;/);
  t.regex(r.stderr, /\/pub\/alpha\.git: bundles: 1 incremental bundle/);
  await assertMirrors(t, origin, toplevel);
  t.is(await showRefOf(join(toplevel, 'pub/forks/alpha-fork.git')), before);
  await noImportLeftovers(t, toplevel);
});

test('a kit with one flipped byte in a bundle is refused before any ref changes', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const beta = origin.repos['/pub/sub/beta.git']!;
  await beta.wt.commit('change');
  await beta.wt.push('main');
  await origin.publish();
  const refsBefore = await showRefOf(join(toplevel, 'pub/sub/beta.git'));

  const kit = join(origin.dir, 'kit.tar');
  await exportKit(['--bundles', origin.out, '--out', kit, '-q']);
  const description = await kitJson(kit);
  const target = description.files.find((f) => f.name.startsWith('pub/sub/beta.git/') && f.name.endsWith('.bundle'))!;
  const bytes = await readFile(kit);
  // the bundle's bytes are in the tar as they are: find them and flip one near the end of its pack
  const bundle = (await entries(kit)).find((e) => e.name === target.name)!.bytes;
  const at = bytes.indexOf(bundle);
  t.true(at > 0);
  const flip = at + bundle.length - 30;
  bytes.writeUInt8(bytes.readUInt8(flip) ^ 0xff, flip);
  await writeFile(kit, bytes);

  await origin.server.close();
  const r = await runCli(['import', kit, '-c', config]);
  t.is(r.code, 1);
  t.regex(r.stderr, /sha256/);
  t.regex(r.stderr, /E_BUNDLE_VERIFY/);
  t.regex(r.stderr, new RegExp(target.name.replace(/[.]/g, '\\.')));
  t.is(await showRefOf(join(toplevel, 'pub/sub/beta.git')), refsBefore, 'refs untouched');
  await noImportLeftovers(t, toplevel);
});

test('a tar entry named ../evil is refused and nothing is written outside the import directory', async (t) => {
  const origin = await startOrigin(t);
  const kit = join(origin.dir, 'kit.tar');
  await exportKit(['--bundles', origin.out, '--out', kit, '-q']);
  const items = await entries(kit);
  const evil = join(origin.dir, 'evil.tar');
  await writeTar(evil, [items[0]!, { name: '../evil', bytes: Buffer.from('owned\n') }, ...items.slice(1)]);

  const { config, toplevel } = await replicaFor(origin);
  const r = await runCli(['import', evil, '-c', config]);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /refusing tar entry "\.\.\/evil": its name contains "\." or "\.\." \(path traversal\) \[E_UNSAFE_NAME\]/,
  );
  await t.throwsAsync(stat(join(toplevel, '.bundlemirror', 'evil')));
  await t.throwsAsync(stat(join(toplevel, 'evil')));
  t.deepEqual(
    (await readdir(toplevel)).filter((n) => n !== '.bundlemirror'),
    [],
    'nothing was cloned',
  );
  await noImportLeftovers(t, toplevel);

  // an absolute name and a name kit.json does not list are refused the same way
  await writeTar(evil, [items[0]!, { name: '/etc/evil', bytes: Buffer.from('x') }]);
  t.regex(
    (await runCli(['import', evil, '-c', config])).stderr,
    /refusing tar entry "\/etc\/evil": its name is an absolute path/,
  );
  await writeTar(evil, [items[0]!, { name: 'pub/alpha.git/index.jsonx', bytes: Buffer.from('x') }]);
  t.regex((await runCli(['import', evil, '-c', config])).stderr, /refusing tar entry "pub\/alpha\.git\/index\.jsonx"/);
});

test('a kit downloaded only in part is refused with a hint to resume; completed, it imports', async (t) => {
  const origin = await startOrigin(t);
  const kit = join(origin.dir, 'kit.tar');
  await exportKit(['--bundles', origin.out, '--out', kit, '-q']);
  const whole = await readFile(kit);
  const { config, toplevel } = await replicaFor(origin);
  await origin.server.close();

  await truncate(kit, Math.floor(whole.length / 2));
  const partial = await runCli(['import', kit, '-c', config]);
  t.is(partial.code, 1);
  t.regex(partial.stderr, /\[E_KIT\]/);
  t.regex(partial.stderr, /resumes with Range/);
  t.deepEqual(
    (await readdir(toplevel)).filter((n) => n !== '.bundlemirror'),
    [],
  );

  // the rest of the bytes arrive (a resumed download appends them)
  await appendFile(kit, whole.subarray(Math.floor(whole.length / 2)));
  const r = await runCli(['import', kit, '-c', config]);
  t.is(r.code, 0, r.stderr);
  await assertMirrors(t, origin, toplevel);
});

test('export -c CONFIG reads the remote over HTTP, honours include/exclude, and keeps no downloaded bundle afterwards', async (t) => {
  const origin = await startOrigin(t);
  const source = await replicaFor(origin, 'exporter', 'exclude = /pub/sub/*');
  const kit = join(origin.dir, 'kit.tar');
  const out = await exportKit(['-c', source.config, '--out', kit, '-q']);
  t.regex(out, /: 2 repositories, 0 unchanged, 0 left out;/);
  const description = await kitJson(kit);
  t.deepEqual(description.repos, ['/pub/alpha.git', '/pub/forks/alpha-fork.git']);
  t.is(description.source, `${origin.server.url}/manifest.js.gz`);
  t.deepEqual(await readdir(join(source.toplevel, '.bundlemirror', 'export')), []);

  const { config, toplevel } = await replicaFor(origin);
  await origin.server.close();
  const r = await runCli(['import', kit, '-c', config]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^cloned 2,/);
  await assertMirrors(t, origin, toplevel, ['/pub/alpha.git', '/pub/forks/alpha-fork.git']);
  await t.throwsAsync(stat(join(toplevel, 'pub/sub/beta.git')));
});

test('kit entry names: only manifest.js.gz, <repo>/index.json and <repo>/<sha256>.bundle pass', (t) => {
  const sha = 'a'.repeat(64);
  t.deepEqual(parseKitName('manifest.js.gz'), { kind: 'manifest' });
  t.deepEqual(parseKitName('pub/a.git/index.json'), { kind: 'index', repo: '/pub/a.git' });
  t.deepEqual(parseKitName(`pub/a.git/${sha}.bundle`), { kind: 'bundle', repo: '/pub/a.git', sha256: sha });
  for (const bad of [
    '../evil',
    'pub/../../evil/index.json',
    '/etc/passwd',
    'pub//a.git/index.json',
    'pub/.git/index.json',
    'pub/-a.git/index.json',
    'pub\\a.git/index.json',
    'index.json',
    'pub/a.git/x.bundle',
    'pub/a.git/config',
    './manifest.js.gz',
    '',
  ]) {
    t.true('problem' in parseKitName(bad), bad);
  }
});

test('offline (no git URL), an existing repository off every incremental path takes a full base instead of git fetch', (t) => {
  const oid = (n: number) => n.toString(16).padStart(40, '0');
  const base = {
    uri: `${'b'.repeat(64)}.bundle`,
    sha256: 'b'.repeat(64),
    size: 1000,
    creationToken: 1,
    prerequisites: [],
    tips: { 'refs/heads/main': oid(2) },
  };
  const index = {
    version: 1 as const,
    path: '/a.git',
    generated: '',
    fingerprint: oid(9),
    head: null,
    refs: { 'refs/heads/main': oid(2) },
    bundles: [base],
  };
  t.is(planBundles({ index, present: new Set([oid(7)]), exists: true }).kind, 'fetch');
  t.like(planBundles({ index, present: new Set([oid(7)]), exists: true, allowBase: true }), {
    kind: 'bundles',
    bytes: 1000,
  });
});
