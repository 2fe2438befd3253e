/**
 * What an incremental update of one repository costs in git processes.
 * Each one costs the pull a fork of its whole heap (several milliseconds
 * with a 10,000-entry manifest in memory), so a poll after one push is
 * mostly these: a step that starts asking git again what the sync already
 * knows shows up here. The pull runs in this process so gitProcessCount()
 * sees it; the tests run one at a time, as the count is the worker's.
 */
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git, gitProcessCount } from '../src/git/exec.js';
import { loadPullConfig } from '../src/replica/config/config.js';
import { memoryLog } from '../src/replica/log.js';
import { pull as pullInProcess } from '../src/replica/pull.js';
import { memberId } from '../src/replica/sync/objstore.js';
import { showRefOf } from './support/repos.js';
import { fingerprintOf, pull, replicaFor, startOrigin, type Origin } from './support/mirror.js';

async function pushOne(origin: Origin, path: string): Promise<void> {
  const repo = origin.repos[path]!;
  await repo.wt.commit(`one more in ${path}`);
  await repo.wt.push('main');
}

/** A pull in this process, and how many git processes it started. */
async function countedPull(config: string) {
  const before = gitProcessCount();
  const report = await pullInProcess(loadPullConfig(config), { log: memoryLog() });
  return { processes: gitProcessCount() - before, report };
}

test.serial(
  'a one-commit push reaches the replica with seven git processes; a HEAD and owner change with it costs two more',
  async (t) => {
    const origin = await startOrigin(t);
    const { config, toplevel } = await replicaFor(origin);
    t.is((await pull(config)).code, 0);
    const path = '/pub/sub/beta.git';
    const bare = origin.repos[path]!.bare;
    const mirror = join(toplevel, path);

    await pushOne(origin, path);
    await origin.publish();
    const push = await countedPull(config);
    t.deepEqual(push.report.failed, []);
    t.deepEqual(push.report.updated, [path]);
    t.is(push.report.synced[path]?.via, 'bundles');
    t.is(await showRefOf(mirror), await showRefOf(bare), 'refs equal the origin');
    t.is(push.report.synced[path]?.fingerprint, await fingerprintOf(bare));
    // config (protection and owner), show-ref, cat-file (what the index names), bundle unbundle,
    // rev-list (connectivity), update-ref, show-ref (the fingerprint after)
    t.is(push.processes, 7);

    await pushOne(origin, path);
    await git(['symbolic-ref', 'HEAD', 'refs/heads/devel'], { gitDir: bare });
    await git(['config', 'gitweb.owner', 'Bob'], { gitDir: bare });
    await origin.publish();
    const withMetadata = await countedPull(config);
    t.deepEqual(withMetadata.report.failed, []);
    t.deepEqual(withMetadata.report.updated, [path]);
    t.is(await showRefOf(mirror), await showRefOf(bare));
    t.is((await readFile(join(mirror, 'HEAD'), 'utf8')).trim(), 'ref: refs/heads/devel');
    t.is((await git(['config', 'gitweb.owner'], { gitDir: mirror })).stdout.toString().trim(), 'Bob');
    // the same seven, then symbolic-ref and config to write the two that changed
    t.is(withMetadata.processes, 9);
  },
);

test.serial('a push to a forkgroup member updates it and its store with fourteen git processes', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const path = '/pub/alpha.git';
  await pushOne(origin, path);
  await origin.publish();
  const push = await countedPull(config);
  t.deepEqual(push.report.failed, []);
  t.deepEqual(push.report.updated, [path]);
  t.is(await showRefOf(join(toplevel, path)), await showRefOf(origin.repos[path]!.bare));
  const store = (await readFile(join(toplevel, path, 'objects/info/alternates'), 'utf8'))
    .trim()
    .replace(/\/objects$/, '');
  const tip = (await git(['rev-parse', 'refs/heads/main'], { gitDir: origin.repos[path]!.bare })).stdout
    .toString()
    .trim();
  const recorded = await git(['rev-parse', `refs/virtual/${memberId(path)}/heads/main`], { gitDir: store });
  t.is(recorded.stdout.toString().trim(), tip, "the store's virtual ref holds the new tip");
  // the member: config, show-ref, cat-file, rev-list, update-ref, show-ref; the store: config, cat-file
  // (prerequisites), bundle unbundle, rev-list, then recording the refs: cat-file, rev-list, show-ref, update-ref
  t.is(push.processes, 14);
});
