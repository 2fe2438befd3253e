import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseManifest, readManifestFile } from '../src/manifest/manifest.js';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { makeFork, makeRepo, initBareRepo, showRefOf, tempDir, toplevelWith } from './support/repos.js';
import { runCli } from './support/cli.js';
import { VERSION } from '../src/version.js';
import { publishJson } from './support/reports.js';

async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  const { dir, toplevel, out, repos } = await toplevelWith(t, ['pub/alpha.git', 'pub/sub/beta.git'], {
    'pub/alpha.git': { description: 'alpha repo', owner: 'Alice' },
  });
  const [alpha, beta] = [repos['pub/alpha.git']!, repos['pub/sub/beta.git']!];
  const fork = await makeFork(dir, toplevel, alpha.bare, 'pub/forks/alpha-fork.git');
  await initBareRepo(join(toplevel, 'pub/empty.git'));
  return { dir, toplevel, out, alpha, beta, fork };
}

async function publishOk(toplevel: string, out: string, ...extra: string[]) {
  const r = await publishJson(['--toplevel', toplevel, '--out', out, ...extra]);
  if (r.code !== 0) throw new Error(`publish failed (${r.code}): ${r.stderr}`);
  return r;
}

function sha256File(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function snapshot(dir: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  async function walk(d: string) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else m.set(p, (await stat(p)).mtimeMs);
    }
  }
  await walk(dir);
  return m;
}

test('manifest fingerprints equal `git show-ref | sha1sum` and indexes hold every ref, HEAD and verified bundles', async (t) => {
  const { toplevel, out, alpha } = await setup(t);
  await publishOk(toplevel, out);
  const manifest = await readManifestFile(join(out, 'manifest.js.gz'));
  t.deepEqual(
    Object.keys(manifest).sort(),
    ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'],
    'empty repository left out',
  );
  for (const [path, entry] of Object.entries(manifest)) {
    const gitDir = join(toplevel, path);
    const shell = execFileSync('sh', ['-c', `git --git-dir="${gitDir}" show-ref | sha1sum`])
      .toString()
      .split(' ')[0];
    t.is(entry.fingerprint, shell, `${path} fingerprint`);
    t.is(entry.head, 'ref: refs/heads/main');
    const index = parseRepoIndex(await readFile(join(out, path, 'index.json')), path);
    const showRef = await showRefOf(gitDir);
    t.deepEqual(
      Object.entries(index.refs)
        .map(([n, o]) => `${o} ${n}\n`)
        .join(''),
      showRef,
      `${path} index refs`,
    );
    t.is(index.head, 'ref: refs/heads/main');
    if (path === '/pub/forks/alpha-fork.git') continue; // a forkgroup member: see the forkgroup test
    t.is(index.bundles.length, 1);
    const b = index.bundles[0]!;
    const bytes = await readFile(join(out, path, b.uri));
    t.is(bytes.length, b.size);
    t.is(sha256File(bytes), b.sha256);
    t.is(b.uri, `${b.sha256}.bundle`);
    t.deepEqual(b.prerequisites, []);
    t.deepEqual(b.tips, index.refs);
    const list = await readFile(join(out, path, 'bundle-list'), 'utf8');
    t.regex(list, /version = 1/);
    t.regex(list, /mode = all/);
    t.regex(list, /heuristic = creationToken/);
  }
  t.is(manifest['/pub/alpha.git']!.description, 'alpha repo');
  t.is(manifest['/pub/alpha.git']!.owner, 'Alice');
  t.is(manifest['/pub/sub/beta.git']!.description, undefined, "git's default description is left out");
  t.true((manifest['/pub/alpha.git']!.modified ?? 0) > 1_600_000_000);
  t.truthy(alpha);
});

test('the manifest has the shape grokmirror writes and reads grokmirror manifests', async (t) => {
  const fixture = await readFile(new URL('../../shared/fixtures/grokmirror-manifest.js.gz', import.meta.url)).catch(
    () => null,
  );
  if (!fixture) return t.pass('shared fixture not present');
  const { manifest, problems } = parseManifest(fixture);
  t.deepEqual(problems, []);
  t.is(Object.keys(manifest).length, 5);
  t.is(manifest['/pub/scm/delta.git']!.reference, '/pub/scm/gamma.git');
  t.is(manifest['/pub/scm/alpha.git']!.forkgroup, '3028fd40-6c5f-433e-9295-6bf61b673aee');
  const { toplevel, out } = await setup(t);
  await publishOk(toplevel, out);
  const ours = await readManifestFile(join(out, 'manifest.js.gz'));
  for (const entry of Object.values(ours)) {
    for (const key of Object.keys(entry))
      t.true(
        ['modified', 'fingerprint', 'head', 'description', 'reference', 'forkgroup', 'owner', 'symlinks'].includes(key),
        key,
      );
    t.is(typeof entry.modified, 'number');
    t.true(entry.reference === null || typeof entry.reference === 'string');
  }
});

test('republishing with nothing changed rewrites nothing that is served', async (t) => {
  const { toplevel, out } = await setup(t);
  await publishOk(toplevel, out);
  const before = await snapshot(out);
  await new Promise((r) => setTimeout(r, 20));
  const r = await publishOk(toplevel, out);
  t.like(r.report, { counts: { changed: 0, unchanged: 3 }, manifestWritten: false });
  const after = await snapshot(out);
  // publish's own bookkeeping (dotfiles, never served) may be renewed: ref files written within the
  // last seconds are only recorded by a later publish (src/git/refs-signature.ts)
  const served = (m: Map<string, number>) => [...m.entries()].filter(([p]) => !basename(p).startsWith('.'));
  t.deepEqual(served(after), served(before));
});

test('a push changes exactly that repository: an incremental bundle with the old tips as prerequisites', async (t) => {
  const { toplevel, out, beta } = await setup(t);
  await publishOk(toplevel, out);
  const m1 = await readManifestFile(join(out, 'manifest.js.gz'));
  const i1 = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  const oldMain = i1.refs['refs/heads/main']!;
  await beta.wt.commit('new work');
  await beta.wt.push('main');
  const r = await publishOk(toplevel, out);
  t.like(r.report.counts, { changed: 1, unchanged: 2 });
  const changed = r.report.repos.filter((x) => x.result === 'changed');
  t.deepEqual(
    changed.map((x) => [x.path, x.bundles?.map((b) => b.kind)]),
    [['/pub/sub/beta.git', ['incremental']]],
  );
  const m2 = await readManifestFile(join(out, 'manifest.js.gz'));
  for (const p of Object.keys(m1)) {
    if (p === '/pub/sub/beta.git') t.not(m2[p]!.fingerprint, m1[p]!.fingerprint);
    else t.deepEqual(m2[p], m1[p], `${p} untouched`);
  }
  const i2 = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  t.is(i2.bundles.length, 2);
  const inc = i2.bundles[1]!;
  t.deepEqual(inc.prerequisites, [oldMain]);
  t.deepEqual(Object.keys(inc.tips), ['refs/heads/main'], 'an incremental lists only the refs that changed');
  t.true(inc.creationToken > i2.bundles[0]!.creationToken);
  t.true(inc.size < i2.bundles[0]!.size);
  const list = await readFile(join(out, 'pub/sub/beta.git/bundle-list'), 'utf8');
  t.is(list.match(/uri = /g)?.length, 2, 'the bundle-list names the whole chain');
});

test('ref deletions and moves to known objects publish a new index without a bundle', async (t) => {
  const { toplevel, out, beta } = await setup(t);
  await publishOk(toplevel, out);
  await beta.wt.run(['push', '--quiet', 'origin', ':devel']);
  await publishOk(toplevel, out);
  const idx = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  t.is(idx.bundles.length, 1);
  t.false('refs/heads/devel' in idx.refs);
  t.is(
    Object.entries(idx.refs)
      .map(([n, o]) => `${o} ${n}\n`)
      .join(''),
    await showRefOf(join(toplevel, 'pub/sub/beta.git')),
  );
});

test('a long chain collapses into a new base and keeps the old chain listed as superseded', async (t) => {
  const { toplevel, out, beta } = await setup(t);
  await publishOk(toplevel, out, '--max-incrementals', '2', '--chain-ratio', '100');
  for (let i = 0; i < 3; i++) {
    await beta.wt.commit(`work ${i}`);
    await beta.wt.push('main');
    await publishOk(toplevel, out, '--max-incrementals', '2', '--chain-ratio', '100');
  }
  const idx = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  const live = idx.bundles.filter((b) => !b.superseded);
  const superseded = idx.bundles.filter((b) => b.superseded);
  t.is(live.length, 1, 'one fresh base');
  t.deepEqual(live[0]!.prerequisites, []);
  t.is(superseded.length, 4, 'old base, two incrementals and the bridging incremental stay listed');
  t.true(superseded.every((b) => b.creationToken < live[0]!.creationToken));
  const list = await readFile(join(out, 'pub/sub/beta.git/bundle-list'), 'utf8');
  t.is(list.match(/uri = /g)?.length, 1, 'stock git is given only the live chain');
  for (const b of idx.bundles) t.is((await stat(join(out, 'pub/sub/beta.git', b.uri))).size, b.size);
});

test('publish REPO republishes only that repository, by disk path or manifest path', async (t) => {
  const { toplevel, out, alpha, beta } = await setup(t);
  await publishOk(toplevel, out);
  await alpha.wt.commit('a');
  await alpha.wt.push('main');
  await beta.wt.commit('b');
  await beta.wt.push('main');
  const r = await publishJson(['--toplevel', toplevel, '--out', out, alpha.bare]);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { changed: 1, unchanged: 0 });
  const m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.is(
    m['/pub/alpha.git']!.fingerprint!,
    createHash('sha1')
      .update(await showRefOf(alpha.bare))
      .digest('hex'),
  );
  t.not(
    m['/pub/sub/beta.git']!.fingerprint!,
    createHash('sha1')
      .update(await showRefOf(beta.bare))
      .digest('hex'),
    'beta waits for its own publish',
  );
  const r2 = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet', '/pub/sub/beta.git']);
  t.is(r2.code, 0, r2.stderr);
  const m2 = await readManifestFile(join(out, 'manifest.js.gz'));
  t.is(
    m2['/pub/sub/beta.git']!.fingerprint!,
    createHash('sha1')
      .update(await showRefOf(beta.bare))
      .digest('hex'),
  );
  const bad = await runCli(['publish', '--toplevel', toplevel, '--out', out, '/pub/nope.git']);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /\/pub\/nope\.git is not a bare repository/);
});

test('symlinks, --ignore and alternates are reflected in the manifest', async (t) => {
  const { toplevel, out, alpha } = await setup(t);
  await symlink(alpha.bare, join(toplevel, 'pub/alias.git'));
  await symlink('/etc', join(toplevel, 'pub/escape'));
  const ref = join(toplevel, 'pub/ref-user.git');
  await initBareRepo(ref);
  await writeFile(join(ref, 'objects/info/alternates'), join(alpha.bare, 'objects') + '\n');
  execFileSync('git', [
    '--git-dir',
    ref,
    'update-ref',
    'refs/heads/main',
    (await showRefOf(alpha.bare)).split(' ')[0]!,
  ]);
  await publishOk(toplevel, out, '--ignore', '/pub/sub/*');
  const m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.deepEqual(m['/pub/alpha.git']!.symlinks, ['/pub/alias.git']);
  t.false('/pub/alias.git' in m);
  t.false('/pub/sub/beta.git' in m, '--ignore leaves it out');
  t.is(m['/pub/ref-user.git']!.reference, '/pub/alpha.git');
});

test('errors: a missing toplevel exits 2; a broken repository exits 1, names it and keeps its published files', async (t) => {
  const { dir, toplevel, out, beta } = await setup(t);
  const missing = await runCli(['publish', '--toplevel', join(dir, 'nope'), '--out', out]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /toplevel .*nope is not a readable directory/);
  t.regex(missing.stderr, /hint:/);

  await publishOk(toplevel, out);
  const before = await readManifestFile(join(out, 'manifest.js.gz'));
  await beta.wt.commit('x');
  await beta.wt.push('main');
  // corrupt the object the new ref points at, so bundling must fail
  const tip = (await showRefOf(beta.bare))
    .split('\n')
    .find((l) => l.endsWith('refs/heads/main'))!
    .split(' ')[0]!;
  const obj = join(beta.bare, 'objects', tip.slice(0, 2), tip.slice(2));
  await chmod(obj, 0o644);
  await writeFile(obj, 'garbage');
  const r = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet']);
  t.is(r.code, 1);
  t.regex(r.stderr, /\/pub\/sub\/beta\.git: /);
  const after = await readManifestFile(join(out, 'manifest.js.gz'));
  t.deepEqual(
    after['/pub/sub/beta.git'],
    before['/pub/sub/beta.git'],
    'the failed repository keeps its previous entry',
  );
  const idx = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  for (const b of idx.bundles) t.is(sha256File(await readFile(join(out, 'pub/sub/beta.git', b.uri))), b.sha256);
  const leftovers = (await readdir(join(out, 'pub/sub/beta.git'))).filter((n) => n.startsWith('.bm-tmp-'));
  t.deepEqual(leftovers, []);
});

test('two publishes at once both finish and leave a consistent tree', async (t) => {
  const { toplevel, out } = await setup(t);
  const [a, b] = await Promise.all([
    runCli(['publish', '--toplevel', toplevel, '--out', out]),
    runCli(['publish', '--toplevel', toplevel, '--out', out]),
  ]);
  t.is(a.code, 0, a.stderr);
  t.is(b.code, 0, b.stderr);
  const m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.is(Object.keys(m).length, 3);
  for (const path of Object.keys(m)) {
    const idx = parseRepoIndex(await readFile(join(out, path, 'index.json')), path);
    t.is(idx.fingerprint, String(m[path]!.fingerprint));
    for (const bl of idx.bundles) t.is((await stat(join(out, path, bl.uri))).size, bl.size);
  }
});

test('a repository recreated with other history publishes correctly even though the old tips are gone', async (t) => {
  const { dir, toplevel, out } = await setup(t);
  await publishOk(toplevel, out);
  const path = join(toplevel, 'pub/sub/beta.git');
  const { rm } = await import('node:fs/promises');
  await rm(path, { recursive: true });
  await makeRepo(dir, toplevel, 'pub/sub/beta.git', { commits: 2 });
  await publishOk(toplevel, out);
  const idx = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  t.is(
    Object.entries(idx.refs)
      .map(([n, o]) => `${o} ${n}\n`)
      .join(''),
    await showRefOf(path),
  );
  const live = idx.bundles.filter((b) => !b.superseded);
  t.is(live.length, 1, 'nothing of the old history remains: a fresh base');
  t.deepEqual(live[0]!.prerequisites, []);
});

test("forks share one forkgroup; a fork publishes only what it adds on top of its parent's bundles", async (t) => {
  const { toplevel, out } = await setup(t);
  await publishOk(toplevel, out);
  const m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.truthy(m['/pub/alpha.git']!.forkgroup);
  t.is(m['/pub/forks/alpha-fork.git']!.forkgroup, m['/pub/alpha.git']!.forkgroup);
  t.is(m['/pub/sub/beta.git']!.forkgroup, undefined, 'unrelated history: no group');
  const parent = parseRepoIndex(await readFile(join(out, 'pub/alpha.git/index.json')), '/pub/alpha.git');
  const fork = parseRepoIndex(
    await readFile(join(out, 'pub/forks/alpha-fork.git/index.json')),
    '/pub/forks/alpha-fork.git',
  );
  t.is(fork.forkgroup, m['/pub/alpha.git']!.forkgroup);
  t.is(fork.bundles.length, 2);
  const [borrowed, own] = fork.bundles;
  t.is(
    borrowed!.uri,
    `../../alpha.git/${parent.bundles[0]!.sha256}.bundle`,
    "the shared history is the parent's own bundle",
  );
  t.is(borrowed!.sha256, parent.bundles[0]!.sha256);
  t.true(own!.prerequisites.length > 0, "the fork's bundle builds on the parent's commits");
  t.true(own!.size < borrowed!.size / 2, `fork bundle ${own!.size} B vs shared ${borrowed!.size} B`);
  t.true(own!.creationToken > borrowed!.creationToken);
  const bytes = await readFile(join(out, 'pub/forks/alpha-fork.git', own!.uri));
  t.is(sha256File(bytes), own!.sha256);
  // both bundles reach the fork's every ref
  t.deepEqual(Object.keys(fork.refs).sort(), Object.keys({ ...borrowed!.tips, ...own!.tips, ...fork.refs }).sort());
});

test('when the parent collapses into a new base, its forks are rebuilt on it in the same publish', async (t) => {
  const { toplevel, out, alpha } = await setup(t);
  const opts = ['--max-incrementals', '1', '--chain-ratio', '100'];
  await publishOk(toplevel, out, ...opts);
  for (let i = 0; i < 2; i++) {
    await alpha.wt.commit(`parent work ${i}`);
    await alpha.wt.push('main');
    await publishOk(toplevel, out, ...opts);
  }
  const parent = parseRepoIndex(await readFile(join(out, 'pub/alpha.git/index.json')), '/pub/alpha.git');
  const liveBase = parent.bundles.find((b) => !b.superseded && b.prerequisites.length === 0)!;
  const fork = parseRepoIndex(
    await readFile(join(out, 'pub/forks/alpha-fork.git/index.json')),
    '/pub/forks/alpha-fork.git',
  );
  const forkLive = fork.bundles.filter((b) => !b.superseded);
  t.is(forkLive[0]!.sha256, liveBase.sha256, "the fork now borrows the parent's new base");
  t.true(
    fork.bundles.some((b) => b.superseded),
    'its old chain stays listed for replicas part-way along it',
  );
});

test('gc deletes superseded bundles after the grace period and never a file an index still references', async (t) => {
  const { toplevel, out, beta, alpha } = await setup(t);
  const opts = ['--max-incrementals', '1', '--chain-ratio', '100'];
  await publishOk(toplevel, out, ...opts);
  for (let i = 0; i < 2; i++) {
    await beta.wt.commit(`b${i}`);
    await beta.wt.push('main');
    await alpha.wt.commit(`a${i}`);
    await alpha.wt.push('main');
    await publishOk(toplevel, out, ...opts);
  }
  const bundlesOf = async (dir: string) => (await readdir(join(out, dir))).filter((n) => n.endsWith('.bundle'));
  const before = await bundlesOf('pub/sub/beta.git');
  t.true(before.length >= 3);
  // within the grace period nothing goes
  const dry = await runCli(['gc', '--out', out, '--dry-run']);
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout, / 0 to delete/);
  // grace 0: superseded entries leave the indexes, then their files go
  await publishOk(toplevel, out, ...opts, '--grace-days', '0');
  const r = await runCli(['gc', '--out', out, '--grace-days', '0']);
  t.is(r.code, 0, r.stderr);
  for (const path of ['/pub/alpha.git', '/pub/sub/beta.git', '/pub/forks/alpha-fork.git']) {
    const idx = parseRepoIndex(await readFile(join(out, path, 'index.json')), path);
    for (const b of idx.bundles) {
      const file = join(out, path, b.uri);
      t.is(sha256File(await readFile(file)), b.sha256, `${path} still has ${b.uri}`);
    }
  }
  t.true((await bundlesOf('pub/sub/beta.git')).length < before.length, 'old chain files deleted');
});

test('a hook publish of a one-commit push to a repository of tens of MB writes a bundle of kilobytes', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const big = await makeRepo(dir, toplevel, 'pub/big.git', { commits: 20, bytesPerCommit: 1 << 20 });
  await publishOk(toplevel, out);
  await big.wt.commit('one small change');
  await big.wt.push('main');
  const started = process.hrtime.bigint();
  const r = await runCli(['publish', '--toplevel', toplevel, '--out', out, big.bare]);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.is(r.code, 0, r.stderr);
  const idx = parseRepoIndex(await readFile(join(out, 'pub/big.git/index.json')), '/pub/big.git');
  const inc = idx.bundles[idx.bundles.length - 1]!;
  t.true(idx.bundles[0]!.size > 20 << 20, 'the base holds the tens of MB');
  t.true(inc.size < 8 << 10, `incremental of ${inc.size} bytes`);
  t.log(
    `hook publish of one commit to a ${(idx.bundles[0]!.size / 2 ** 20).toFixed(1)} MiB repository: ${inc.size} B bundle, ${ms.toFixed(0)} ms including CLI start`,
  );
});

test('two manifests written within one second still differ in mtime, so static hosts never answer 304 to a change', async (t) => {
  const { toplevel, out, beta } = await setup(t);
  await publishOk(toplevel, out);
  const first = (await stat(join(out, 'manifest.js.gz'))).mtimeMs;
  await beta.wt.commit('quick');
  await beta.wt.push('main');
  await publishOk(toplevel, out, '/pub/sub/beta.git');
  const second = (await stat(join(out, 'manifest.js.gz'))).mtimeMs;
  t.true(Math.floor(second / 1000) > Math.floor(first / 1000), `${first} -> ${second}`);
});

test('a push of only a tag on a published commit is an incremental that says what it builds on', async (t) => {
  const { toplevel, out, beta } = await setup(t);
  await publishOk(toplevel, out);
  await beta.wt.run(['tag', '-a', '-m', 'late tag', 'v9.9', 'HEAD~1']);
  await beta.wt.push('v9.9');
  await publishOk(toplevel, out);
  const idx = parseRepoIndex(await readFile(join(out, 'pub/sub/beta.git/index.json')), '/pub/sub/beta.git');
  t.is(idx.bundles.length, 2);
  const inc = idx.bundles[1]!;
  t.deepEqual(Object.keys(inc.tips), ['refs/tags/v9.9']);
  t.true(inc.prerequisites.length > 0, 'not mistaken for a base');
});

test('a new --base-url reaches every bundle-list, also of repositories that did not change; dropping it makes them relative again', async (t) => {
  const { toplevel, out, alpha } = await setup(t);
  await publishOk(toplevel, out);
  const lists = ['pub/alpha.git', 'pub/sub/beta.git', 'pub/forks/alpha-fork.git'].map((p) =>
    join(out, p, 'bundle-list'),
  );
  const uris = async (file: string) =>
    [...(await readFile(file, 'utf8')).matchAll(/^\s*uri = (.*)$/gm)].map((m) => m[1]!);
  for (const f of lists) for (const u of await uris(f)) t.false(/^https?:/.test(u), `${f}: ${u} is relative`);

  await publishOk(toplevel, out, '--base-url', 'https://cdn.example/tree');
  for (const f of lists) {
    const found = await uris(f);
    t.true(found.length > 0);
    for (const u of found) t.true(u.startsWith('https://cdn.example/tree/pub/'), `${f}: ${u}`);
  }
  // a hook publish of one repository with the same base leaves the others as they are
  const before = await Promise.all(lists.map((f) => stat(f).then((s) => s.mtimeMs)));
  await alpha.wt.commit('more');
  await alpha.wt.push('main');
  await publishOk(toplevel, out, '--base-url', 'https://cdn.example/tree', alpha.bare);
  const after = await Promise.all(lists.map((f) => stat(f).then((s) => s.mtimeMs)));
  t.deepEqual(after.slice(1), before.slice(1), 'unchanged repositories keep their bundle-lists');
  for (const u of await uris(lists[0]!)) t.true(u.startsWith('https://cdn.example/tree/pub/alpha.git/'));

  await publishOk(toplevel, out);
  for (const f of lists) for (const u of await uris(f)) t.false(/^https?:/.test(u), `${f}: ${u} is relative again`);
});

test('a hook publish carries over the entries of its own manifest as written, and checks every entry of one changed behind its back', async (t) => {
  const { toplevel, out, alpha, beta } = await setup(t);
  await publishOk(toplevel, out);
  const file = join(out, 'manifest.js.gz');
  const own = await readFile(file);
  t.is(
    (await readFile(join(out, '.manifest.sha256'), 'utf8')).trim(),
    `${sha256File(own)} ${VERSION}`,
    'the digest of what was written, and the version that checked it',
  );
  // a push to alpha, published alone: beta's entry is carried over unchanged
  await alpha.wt.commit('a');
  await alpha.wt.push('main');
  t.is((await publishOk(toplevel, out, alpha.bare)).code, 0);
  const carried = parseManifest(await readFile(file)).manifest;
  t.deepEqual(carried['/pub/sub/beta.git'], parseManifest(own).manifest['/pub/sub/beta.git']);
  t.is(
    (await readFile(join(out, '.manifest.sha256'), 'utf8')).trim(),
    `${sha256File(await readFile(file))} ${VERSION}`,
  );

  // the manifest replaced behind the publish's back, with entries no reader accepts: they are not carried over
  const edited = JSON.parse(gunzipSync(await readFile(file)).toString('utf8')) as Record<string, unknown>;
  edited['/pub/../escape.git'] = { fingerprint: 'a'.repeat(40) };
  edited['/pub/odd.git'] = { fingerprint: 'not hex', modified: -1 };
  await writeFile(file, gzipSync(JSON.stringify(edited)));
  await beta.wt.commit('b');
  await beta.wt.push('main');
  t.is((await publishOk(toplevel, out, beta.bare)).code, 0);
  const after = parseManifest(await readFile(file));
  t.deepEqual(after.problems, [], 'what the hook publish wrote is clean');
  t.deepEqual(Object.keys(after.manifest).sort(), Object.keys(carried).sort());
  t.is(after.manifest['/pub/alpha.git']?.fingerprint, carried['/pub/alpha.git']?.fingerprint);
});
