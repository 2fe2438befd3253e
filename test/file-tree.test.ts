/**
 * A replica whose origin is a published tree on a mounted filesystem
 * (`file://` manifest and site): the whole pull goes through the download
 * door, with its checks, and a hostile tree gets no further than a hostile
 * server would.
 */
import test, { type ExecutionContext } from 'ava';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BundlemirrorError } from '../src/errors.js';
import { git } from '../src/git/exec.js';
import { fetchMirror, initBare } from '../src/git/repo.js';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { runCli } from './support/cli.js';
import { fingerprintOf, pull, pullReport, startOrigin, writeConfig, type Origin } from './support/mirror.js';
import { tempDir } from './support/repos.js';

const PATHS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

async function fileReplica(
  origin: Origin,
  tree: string,
  name: string,
  extra = '',
): Promise<{ config: string; toplevel: string }> {
  const toplevel = join(origin.dir, name);
  const site = pathToFileURL(tree).href;
  const config = await writeConfig(origin.dir, {
    toplevel,
    site,
    manifest: `${site}/manifest.js.gz`,
    extra,
    name: `${name}.conf`,
  });
  return { config, toplevel };
}

async function assertInSync(t: ExecutionContext, origin: Origin, toplevel: string): Promise<void> {
  for (const p of PATHS)
    t.is(await fingerprintOf(join(toplevel, p)), await fingerprintOf(join(origin.toplevel, p)), `${p} in sync`);
}

test('a replica pulls a published tree over file://: fingerprints equal, then an incremental update', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await fileReplica(origin, origin.out, 'replica');
  const first = await pullReport(config);
  t.is(first.code, 0, first.stderr);
  t.like(first.report.counts, { cloned: 3, updated: 0, unchanged: 0, failed: 0 });
  await assertInSync(t, origin, toplevel);

  const again = await pullReport(config);
  t.is(again.code, 0, again.stderr);
  t.true(again.report.manifest.unchanged);

  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('more');
  await alpha.wt.push('main');
  await origin.publish();
  const update = await pullReport(config);
  t.is(update.code, 0, update.stderr);
  t.like(update.report.counts, { updated: 1 });
  await assertInSync(t, origin, toplevel);
});

test('a hostile file:// tree is refused: an index naming a bundle outside, a bundle symlinked to /etc', async (t) => {
  const origin = await startOrigin(t);
  const tree = join(origin.dir, 'hostile');
  await cp(origin.out, tree, { recursive: true });
  // alpha's index names a bundle above the tree
  const alphaIndex = join(tree, 'pub/alpha.git/index.json');
  const index = JSON.parse(await readFile(alphaIndex, 'utf8')) as { bundles: { uri: string }[] };
  index.bundles[0]!.uri = '../../../../../../../../etc/passwd.bundle';
  await writeFile(alphaIndex, JSON.stringify(index));
  // beta's bundle is a symlink to a file outside the tree
  const betaDir = join(tree, 'pub/sub/beta.git');
  const beta = parseRepoIndex(await readFile(join(betaDir, 'index.json')), '/pub/sub/beta.git');
  for (const b of beta.bundles) {
    await rm(join(betaDir, b.uri));
    await symlink('/etc/passwd', join(betaDir, b.uri));
  }
  const { config, toplevel } = await fileReplica(origin, tree, 'replica');
  const r = await pull(config);
  t.is(r.code, 1, r.stderr);
  // each refusal names its repository and its code
  t.regex(r.stderr, /^ERROR: \/pub\/alpha\.git: .*\[E_INDEX\]$/m);
  t.regex(r.stderr, /^ERROR: \/pub\/sub\/beta\.git: .*\[E_SYMLINK\]$/m);
  // the fork's own tree is intact: it is mirrored
  t.is(
    await fingerprintOf(join(toplevel, '/pub/forks/alpha-fork.git')),
    await fingerprintOf(join(origin.toplevel, '/pub/forks/alpha-fork.git')),
  );
});

test('git fetch from a local repository is refused: git_url naming a path stops the pull before it starts', async (t) => {
  const origin = await startOrigin(t);
  const { config } = await fileReplica(
    origin,
    origin.out,
    'replica',
    `[bundlemirror]\ngit_url = ${pathToFileURL(origin.toplevel).href}\n`,
  );
  const r = await pull(config);
  t.is(r.code, 2);
  t.regex(r.stderr, /\[E_CONFIG\]/);

  // and the git door refuses one whoever asks
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const gitDir = join(dir, 'x.git');
  await mkdir(gitDir);
  await initBare(gitDir, '/x.git');
  for (const url of [pathToFileURL(origin.toplevel).href + '/pub/alpha.git', join(origin.toplevel, 'pub/alpha.git')]) {
    const err = await t.throwsAsync(fetchMirror(gitDir, url, { repo: '/x.git' }));
    t.true(err instanceof BundlemirrorError && err.code === 'E_CONFIG' && err.repo === '/x.git', String(err));
  }
});

test('clone from a file:// tree: the bundles make the clone; a symlink out of the tree and a local --git-url are refused', async (t) => {
  const origin = await startOrigin(t);
  const url = pathToFileURL(join(origin.out, 'pub/alpha.git')).href;
  const dir = join(origin.dir, 'work');
  const r = await runCli(['clone', '--no-progress', url, dir]);
  t.is(r.code, 0, r.stderr);
  const head = (await git(['rev-parse', 'HEAD'], { cwd: dir })).stdout.toString().trim();
  const main = (await git(['rev-parse', 'refs/heads/main'], { gitDir: origin.repos['/pub/alpha.git']!.bare })).stdout
    .toString()
    .trim();
  t.is(head, main);

  const local = await runCli(['clone', '--no-progress', '--git-url', origin.toplevel, url, join(origin.dir, 'w2')]);
  t.is(local.code, 2);
  t.regex(local.stderr, /\[E_USAGE\]/);

  const betaDir = join(origin.out, 'pub/sub/beta.git');
  const beta = parseRepoIndex(await readFile(join(betaDir, 'index.json')), '/pub/sub/beta.git');
  await rm(join(betaDir, beta.bundles[0]!.uri));
  await symlink('/etc/passwd', join(betaDir, beta.bundles[0]!.uri));
  const hostile = await runCli(['clone', '--no-progress', pathToFileURL(betaDir).href, join(origin.dir, 'w3')]);
  t.is(hostile.code, 1, hostile.stderr);
  t.regex(hostile.stderr, /\/pub\/sub\/beta\.git: .*\[E_SYMLINK\]/);
});
