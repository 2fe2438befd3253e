/**
 * Cases the randomized runner (`npm run reliability`) found, replayed step
 * by step so they stay fixed. Each names the seed that found it.
 */
import test from 'ava';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../../src/git/exec.js';
import { verifyMirror } from '../support/reliability.js';
import { LAB_PATHS, startLab } from '../support/lab.js';
import { repoIn } from '../support/reports.js';

test('a forkgroup store never records a ref to history it does not hold: after a tag-only bundle and a git fetch, the group still updates from bundles (runner seed 1004)', async (t) => {
  const lab = await startLab({ bigBytes: 200_000 });
  t.teardown(() => lab.close());
  t.is((await lab.pull()).code, 0);
  // the fork is cloned again later (re-included, or purged and back) while its store lives on
  await rm(join(lab.replicaTop, 'pub/forks/alpha-fork.git'), { recursive: true, force: true });
  const fork = lab.worktrees['/pub/forks/alpha-fork.git']!;
  await fork.commit('fork work');
  await fork.push('main');
  t.is((await lab.publish()).code, 0);
  // an annotated tag on an already published commit: git bundles just the tag object, with no prerequisite
  await fork.run(['tag', '-a', '-m', 'release', 'v2.0']);
  await fork.push('v2.0');
  t.is((await lab.publish()).code, 0);

  const r = await lab.pull();
  t.is(r.code, 0, r.stderr);
  const stores = join(lab.replicaTop, 'objstore');
  for (const name of await readdir(stores)) {
    const fsck = await git(['fsck', '--no-dangling', '--no-progress'], {
      gitDir: join(stores, name),
      okCodes: [1, 2, 4],
    });
    t.is(fsck.code, 0, `store ${name}: ${fsck.stdout.toString()}`);
  }
  // and the group's members keep updating from bundles: the parent, and the fork on top of the commit git fetch brought it
  const alpha = lab.worktrees['/pub/alpha.git']!;
  await alpha.commit('parent work', 100_000);
  await alpha.push('main');
  await fork.commit('more fork work', 100_000);
  await fork.push('main');
  t.is((await lab.publish()).code, 0);
  const again = await lab.pull(['--json']);
  t.is(again.code, 0, again.stderr);
  t.like(repoIn(JSON.parse(again.stdout), '/pub/forks/alpha-fork.git'), { action: 'updated', via: 'bundles' });
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  for (const name of await readdir(stores)) {
    const fsck = await git(['fsck', '--no-dangling', '--no-progress'], {
      gitDir: join(stores, name),
      okCodes: [1, 2, 4],
    });
    t.is(fsck.code, 0, `store ${name}: ${fsck.stdout.toString()}`);
  }
});

test('a git fetch cut mid-way leaves objects without their history; the next pull repairs it instead of failing on every run (runner seed 1020)', async (t) => {
  const lab = await startLab({ bigBytes: 100_000 });
  t.teardown(() => lab.close());
  t.is((await lab.pull()).code, 0);
  const beta = lab.worktrees['/pub/sub/beta.git']!;
  const head = await beta.commit('new work', 50_000);
  await beta.push('main');
  t.is((await lab.publish()).code, 0);
  // unpack-objects writes loose objects as they arrive: a cut leaves the commit without its tree and blobs
  const commit = await git(['cat-file', 'commit', head], { gitDir: join(lab.originTop, 'pub/sub/beta.git') });
  await git(['hash-object', '-t', 'commit', '-w', '--stdin'], {
    gitDir: join(lab.replicaTop, 'pub/sub/beta.git'),
    input: commit.stdout,
  });

  const r = await lab.pull();
  t.is(r.code, 0, r.stderr);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
});
