/**
 * A new repository's refs, from a base proved connected, are written as one
 * packed-refs file (as `git clone` writes them), not a file per ref: the
 * replica ends with exactly the origin's refs, fsck clean, no loose ref; the
 * next pull moves, adds and deletes refs over that file; and what is not a
 * new repository's first refs goes through `update-ref` as before.
 */
import test from 'ava';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../src/errors.js';
import { git, gitText } from '../src/git/exec.js';
import { initBare, setInitialRefs } from '../src/git/repo.js';
import { fingerprintOf, pullReport, replicaFor, startOrigin } from './support/mirror.js';
import { checkRepo } from './support/reliability.js';
import { showRefOf, tempDir } from './support/repos.js';

// (alpha and its fork share a forkgroup store; beta is a repository of its own)
const BETA = '/pub/sub/beta.git';

/** Every file under `dir` (recursively), relative. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  return out;
}

/** Adds `n` pull-request refs (`refs/pull/K/head` and `/merge`) and a nested branch, as a hosting site has. */
async function addManyRefs(bare: string, n: number): Promise<void> {
  const commits = (await gitText(['rev-list', '--all'], { gitDir: bare })).split('\n').filter(Boolean);
  const lines = ['start'];
  for (let k = 1; k <= n; k++) {
    lines.push(`create refs/pull/${k}/head ${commits[k % commits.length]}`);
    lines.push(`create refs/pull/${k}/merge ${commits[(k + 1) % commits.length]}`);
  }
  lines.push(`create refs/heads/feature/deep/x ${commits[0]}`, 'prepare', 'commit', '');
  const r = await git(['update-ref', '--stdin'], { gitDir: bare, input: lines.join('\n') });
  if (r.code !== 0) throw new Error(r.stderr);
}

test("a new repository with hundreds of refs: the origin's refs in one packed-refs file, no loose ref, fsck clean; the next pull moves, adds and deletes refs", async (t) => {
  const origin = await startOrigin(t);
  const beta = origin.repos[BETA]!;
  await addManyRefs(beta.bare, 300);
  await origin.publish();
  const { config, toplevel } = await replicaFor(origin);

  const first = await pullReport(config, '--json');
  t.is(first.code, 0, first.stderr);
  const entry = first.report.repos.find((r) => r.path === BETA)!;
  t.is(entry.action, 'cloned');
  t.is(entry.via, 'bundles');
  const mirror = join(toplevel, 'pub', 'sub', 'beta.git');
  t.is(await showRefOf(mirror), await showRefOf(beta.bare));
  // main, devel, v1.0, feature/deep/x and the pull refs
  t.is((await showRefOf(mirror)).split('\n').filter(Boolean).length, 4 + 300 * 2);
  t.is(entry.fingerprint, await fingerprintOf(beta.bare));
  t.deepEqual(await filesUnder(join(mirror, 'refs')), [], 'no loose ref');
  const packed = await readFile(join(mirror, 'packed-refs'), 'utf8');
  t.true(packed.startsWith('# pack-refs with: sorted \n'));
  t.true(packed.includes(' refs/pull/300/merge\n'));
  for (const path of Object.keys(origin.repos)) {
    const check = await checkRepo(origin.toplevel, toplevel, path);
    t.true(check.ok, `${path}: ${check.why}`);
  }
  // HEAD names a branch that is only in packed-refs
  t.is(
    await gitText(['rev-parse', 'HEAD'], { gitDir: mirror }),
    await gitText(['rev-parse', 'HEAD'], { gitDir: beta.bare }),
  );

  // the next push: a branch moves, a pull ref goes, one comes
  await beta.wt.run(['fetch', '--quiet', 'origin', 'main']);
  await beta.wt.run(['reset', '--quiet', '--hard', 'FETCH_HEAD']);
  await beta.wt.commit('next');
  await beta.wt.push('HEAD:main');
  await git(['update-ref', '-d', 'refs/pull/7/head'], { gitDir: beta.bare });
  await git(['update-ref', 'refs/pull/301/head', 'refs/heads/main'], { gitDir: beta.bare });
  await origin.publish();
  const second = await pullReport(config, '--json');
  t.is(second.code, 0, second.stderr);
  t.is(second.report.repos.find((r) => r.path === BETA)?.action, 'updated');
  t.is(await showRefOf(mirror), await showRefOf(beta.bare));
  const check = await checkRepo(origin.toplevel, toplevel, BETA);
  t.true(check.ok, check.why);
});

test('setInitialRefs: a name that is a directory of another, or a repository that has refs already, goes through update-ref', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const src = join(dir, 'src.git');
  await initBare(src);
  const tree = await gitText(['mktree'], { gitDir: src, input: '' });
  const commit = await gitText(['commit-tree', tree, '-m', 'one'], {
    gitDir: src,
    env: { GIT_AUTHOR_NAME: 'a', GIT_AUTHOR_EMAIL: 'a@b', GIT_COMMITTER_NAME: 'a', GIT_COMMITTER_EMAIL: 'a@b' },
  });

  // refs/heads/a and refs/heads/a/b cannot both exist: git refuses the pair, nothing is written
  const nested = join(dir, 'nested.git');
  await initBare(nested);
  await git(['fetch', '--quiet', src, `${commit}:refs/heads/base`], { gitDir: nested });
  await git(['update-ref', '-d', 'refs/heads/base'], { gitDir: nested });
  const err = await t.throwsAsync(
    setInitialRefs(nested, [
      { name: 'refs/heads/a', oid: commit },
      { name: 'refs/heads/a/b', oid: commit },
    ]),
  );
  t.true(err instanceof BundlemirrorError);
  t.is(await showRefOf(nested), '');
  await t.throwsAsync(stat(join(nested, 'packed-refs')));

  // a repository with a ref: the new refs are loose refs beside it, as update-ref makes them
  const existing = join(dir, 'existing.git');
  await initBare(existing);
  await git(['fetch', '--quiet', src, `${commit}:refs/heads/main`], { gitDir: existing });
  await setInitialRefs(existing, [{ name: 'refs/tags/v1', oid: commit }]);
  t.deepEqual((await filesUnder(join(existing, 'refs'))).sort(), ['heads/main', 'tags/v1']);
  t.is(await showRefOf(existing), `${commit} refs/heads/main\n${commit} refs/tags/v1\n`);

  // a repository whose config names another ref storage (reftable) never reads packed-refs: update-ref writes its refs
  const table = join(dir, 'table.git');
  await initBare(table);
  await git(['fetch', '--quiet', src, `${commit}:refs/heads/base`], { gitDir: table });
  await git(['update-ref', '-d', 'refs/heads/base'], { gitDir: table });
  await git(['config', 'extensions.refStorage', 'reftable'], { gitDir: table });
  await setInitialRefs(table, [{ name: 'refs/heads/main', oid: commit }]);
  await t.throwsAsync(stat(join(table, 'packed-refs')));
  t.deepEqual(await filesUnder(join(table, 'refs')), ['heads/main']);
});

test('setInitialRefs refuses a ref name or object id from the index as update-ref does, writing nothing', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const repo = join(dir, 'r.git');
  await initBare(repo);
  const oid = 'a'.repeat(40);
  for (const refs of [
    [{ name: 'refs/heads/../../config', oid }],
    [{ name: 'HEAD', oid }],
    [{ name: 'refs/heads/ok', oid: 'not-an-id' }],
  ]) {
    const err = await t.throwsAsync(setInitialRefs(repo, refs));
    t.is((err as BundlemirrorError).code, 'E_UNSAFE_NAME');
  }
  await t.throwsAsync(stat(join(repo, 'packed-refs')));
});
