/**
 * What `serve` hands out about repositories, and what it refuses to start
 * on: exactly the repositories of the served manifest over smart HTTP and
 * on the page, never one that publish left out or that merely sits under
 * the toplevel; no published tree that is or holds a git repository; only
 * objects the refs reach; and no 304 for a date in the future.
 */
import test from 'ava';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git, gitText } from '../src/git/exec.js';
import { writeManifestFile } from '../src/manifest/manifest.js';
import { BundlemirrorError } from '../src/errors.js';
import { startServer } from '../src/server/server.js';
import { runCli, servedUrl, startCli } from './support/cli.js';
import { request } from './support/http.js';
import { initBareRepo, makeRepo, showRefOf, tempDir, WorkTree } from './support/repos.js';

const Q = '?service=git-upload-pack';

async function publish(toplevel: string, out: string, ...args: string[]): Promise<void> {
  const r = await runCli(['publish', '--quiet', '--toplevel', toplevel, '--out', out, ...args]);
  if (r.code !== 0) throw new Error(`publish failed: ${r.stderr}`);
}

test("smart HTTP and the page serve the published manifest's repositories, never one publish left out", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const pub = await makeRepo(dir, toplevel, 'pub/a.git', { commits: 1 });
  await makeRepo(dir, toplevel, 'private/secret.git', { commits: 1 });
  await publish(toplevel, out, '--ignore', '/private/*');
  // a repository that appeared after the publish is not served either, until a publish lists it
  await makeRepo(dir, toplevel, 'pub/later.git', { commits: 1 });

  const server = await startServer({ bundles: out, toplevel, port: 0, log: false });
  t.teardown(() => server.close());

  const clone = join(dir, 'a.git');
  await git(['clone', '--quiet', '--mirror', `${server.url}/git/pub/a.git`, clone]);
  t.is(await showRefOf(clone), await showRefOf(pub.bare));

  for (const repo of ['/private/secret.git', '/pub/later.git']) {
    t.is((await request(server.url, `/git${repo}/info/refs${Q}`)).status, 404, repo);
    t.is(
      (await request(server.url, `/git${repo}/git-upload-pack`, { method: 'POST', body: '0000' })).status,
      404,
      repo,
    );
    await t.throwsAsync(git(['ls-remote', `${server.url}/git${repo}`]), undefined, repo);
    const lfs = await request(server.url, `/git${repo}/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/vnd.git-lfs+json', Accept: 'application/vnd.git-lfs+json' },
      body: JSON.stringify({ operation: 'download', objects: [{ oid: 'a'.repeat(64), size: 1 }] }),
    });
    t.is(lfs.status, 404, `LFS ${repo}`);
  }
  const page = (await request(server.url, '/')).body.toString();
  t.true(page.includes('/pub/a.git'));
  t.false(page.includes('secret'));
  t.false(page.includes('later'));

  // once a publish lists it, it is served without a restart
  await publish(toplevel, out, '--ignore', '/private/*');
  t.is((await request(server.url, `/git/pub/later.git/info/refs${Q}`)).status, 200);
  t.is((await request(server.url, `/git/private/secret.git/info/refs${Q}`)).status, 404);
});

test('serve refuses a --bundles directory without a manifest, or one that is or holds a git repository (exit 2)', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const srv = join(dir, 'srv');
  const toplevel = join(srv, 'git');
  const out = join(srv, 'bundles');
  await makeRepo(dir, toplevel, 'private/secret.git', { commits: 1 });
  await publish(toplevel, out);

  const empty = join(dir, 'empty');
  await mkdir(empty);
  const worktree = join(dir, 'work');
  await git(['init', '--quiet', worktree]);
  await writeManifestFile(join(worktree, 'manifest.js.gz'), {});
  const nested = join(dir, 'nested');
  await mkdir(join(nested, 'deep'), { recursive: true });
  await writeManifestFile(join(nested, 'manifest.js.gz'), {});
  await git(['init', '--quiet', join(nested, 'deep', 'checkout')]);
  // the whole of /srv: a manifest (a copy of the published one) and the repositories themselves
  await writeFile(join(srv, 'manifest.js.gz'), await readFile(join(out, 'manifest.js.gz')));

  const refused = [empty, srv, join(toplevel, 'private', 'secret.git'), worktree, nested];
  for (const bundles of refused) {
    const err = await t.throwsAsync(
      startServer({ bundles, toplevel, port: 0, log: false }),
      { instanceOf: BundlemirrorError },
      bundles,
    );
    t.is((err as BundlemirrorError).code, 'E_CONFIG', bundles);
    t.is((err as BundlemirrorError).exitStatus, 2, bundles);
  }
  // through the CLI: exit status 2, the code on stderr, and nothing listening
  const cli = await runCli(['serve', '--bundles', srv, '--port', '0']);
  t.is(cli.code, 2);
  t.regex(cli.stderr, /\[E_CONFIG\]/);

  // the published tree itself starts, and a toplevel inside it is not mistaken for content
  const ok = await startServer({ bundles: out, toplevel, port: 0, log: false });
  t.is((await request(ok.url, '/private/secret.git/config')).status, 404);
  await ok.close();
});

test('a replica serves its own repositories with --toplevel alone: those its manifest lists', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'replica');
  const listed = await makeRepo(dir, toplevel, 'pub/a.git', { commits: 2 });
  await makeRepo(dir, toplevel, 'pub/unlisted.git', { commits: 1 });
  await initBareRepo(join(toplevel, 'objstore', 'group.git'));

  const noManifest = await t.throwsAsync(startServer({ toplevel, port: 0, log: false }), {
    instanceOf: BundlemirrorError,
  });
  t.is((noManifest as BundlemirrorError).code, 'E_CONFIG');

  await writeManifestFile(join(toplevel, 'manifest.js.gz'), {
    '/pub/a.git': { modified: 1_700_000_000, description: 'the listed one', symlinks: ['/pub/alias.git'] },
  });
  await symlink(join(toplevel, 'pub', 'a.git'), join(toplevel, 'pub', 'alias.git'));
  const server = await startServer({ toplevel, port: 0, log: false });
  t.teardown(() => server.close());

  const clone = join(dir, 'clone.git');
  await git(['clone', '--quiet', '--mirror', `${server.url}/git/pub/a.git`, clone]);
  t.is(await showRefOf(clone), await showRefOf(listed.bare));
  t.is((await request(server.url, `/git/pub/alias.git/info/refs${Q}`)).status, 200);
  for (const repo of ['/pub/unlisted.git', '/objstore/group.git']) {
    t.is((await request(server.url, `/git${repo}/info/refs${Q}`)).status, 404, repo);
  }
  // no published tree: nothing of the toplevel is served as a file
  for (const file of ['/manifest.js.gz', '/pub/a.git/config', '/pub/a.git/HEAD']) {
    t.is((await request(server.url, file)).status, 404, file);
  }
  const page = (await request(server.url, '/')).body.toString();
  t.true(page.includes('the listed one'));
  t.true(page.includes(`git clone ${server.url}/git/pub/a.git a`));
  t.false(page.includes('unlisted'));
  t.false(page.includes('bundle-uri'));

  // through the CLI, --toplevel alone does not fall back to ./bundles
  const cli = await runCli(['serve', '--toplevel', join(dir, 'nowhere'), '--port', '0']);
  t.is(cli.code, 2);
  t.regex(cli.stderr, /\[E_TOPLEVEL\]/);
});

test('an object no ref reaches is not fetchable by id over /git/, with protocol v2 or v0', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const { bare, wt } = await makeRepo(dir, toplevel, 'pub/a.git', { commits: 2 });
  const reachable = await wt.run(['rev-parse', 'HEAD~1']);
  const kept = await wt.run(['rev-parse', 'HEAD']);
  const secret = await wt.commit('a secret, pushed by mistake');
  await wt.push('main');
  await wt.run(['reset', '--quiet', '--hard', kept]);
  await wt.push('main');
  // the origin still holds the object; only the refs no longer reach it
  t.is(await gitText(['cat-file', '-t', secret], { gitDir: bare }), 'commit');
  await publish(toplevel, out);
  const server = await startServer({ bundles: out, toplevel, port: 0, log: false });
  t.teardown(() => server.close());

  for (const version of ['2', '0']) {
    const client = await WorkTree.create(dir, `${server.url}/git/pub/a.git`);
    const fetchById = (oid: string) =>
      client.run(['-c', `protocol.version=${version}`, 'fetch', '--quiet', 'origin', oid]);
    await t.throwsAsync(fetchById(secret), undefined, `protocol v${version}`);
    t.not((await git(['cat-file', '-e', secret], { cwd: client.dir, okCodes: [0, 1, 128] })).code, 0);
    // what the refs reach stays fetchable by id
    await fetchById(reachable);
    t.is(await client.run(['rev-parse', 'FETCH_HEAD']), reachable);
  }
});

test('If-Modified-Since in the future is treated as absent: 200, not 304', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeManifestFile(join(dir, 'manifest.js.gz'), {});
  const server = await startServer({ bundles: dir, port: 0, log: false });
  t.teardown(() => server.close());
  const first = await request(server.url, '/manifest.js.gz');
  const future = new Date(Date.now() + 365 * 86_400_000).toUTCString();
  const r = await request(server.url, '/manifest.js.gz', { headers: { 'If-Modified-Since': future } });
  t.is(r.status, 200);
  t.true(r.body.equals(first.body));
  // the validator the server sent still earns a 304
  const same = await request(server.url, '/manifest.js.gz', {
    headers: { 'If-Modified-Since': first.headers['last-modified']! },
  });
  t.is(same.status, 304);
});

test('serve (the CLI) answers clones and fetches over smart HTTP without warnings on stderr', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const repo = await makeRepo(dir, toplevel, 'pub/a.git', { commits: 3 });
  await publish(toplevel, out);
  const serve = startCli(t, ['serve', '--bundles', out, '--toplevel', toplevel, '--port', '0']);
  let url: string | undefined;
  for (let i = 0; i < 600 && !url; i++) {
    url = servedUrl(serve.output().stderr);
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  t.truthy(url, serve.output().stderr);
  const clone = join(dir, 'clone');
  await git(['clone', '--quiet', '--mirror', `${url}/git/pub/a.git`, clone]);
  await git(['--git-dir', clone, 'fetch', '--quiet', 'origin']);
  t.is(await showRefOf(clone), await showRefOf(repo.bare));
  serve.signal('SIGTERM');
  const done = await serve.done;
  t.is(done.code, 0);
  t.false(/Warning/.test(done.stderr), done.stderr);
});
