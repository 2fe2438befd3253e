import test from 'ava';
import { readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import { showRefOf } from './support/repos.js';
import { gunzipSync } from 'node:zlib';
import { readPullConfig } from '../src/replica/config/config.js';
import { pullScopeOf } from '../src/replica/daemon/job-queue.js';
import { createPullLog } from '../src/replica/log.js';
import { pull as pullInProcess } from '../src/replica/pull.js';
import { breakBeta, pull, pullReport, replicaFor, startOrigin, type Origin } from './support/mirror.js';
import { recordedState } from './support/state.js';

const PATHS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

/** Two replicas of one origin, both pulled once (which settles the manifest). */
async function twins(t: import('ava').ExecutionContext, origin: Origin, names = ['a', 'b']) {
  const a = await replicaFor(origin, names[0]);
  const b = await replicaFor(origin, names[1]);
  for (const r of [a, b]) t.is((await pull(r.config)).code, 0);
  return { a, b };
}

async function push(origin: Origin, path: string): Promise<void> {
  const repo = origin.repos[path]!;
  await repo.wt.commit(`change of ${path}`);
  await repo.wt.push('main');
  await origin.publish();
}

/** What a replica holds: refs of every repository, its own manifest, and what its state records (times left out). */
async function holdings(toplevel: string) {
  const refs: Record<string, string> = {};
  for (const p of PATHS) refs[p] = await showRefOf(join(toplevel, p)).catch(() => '(absent)');
  const recorded = Object.fromEntries(
    Object.entries(await recordedState(toplevel)).map(([p, s]) => {
      const { lastSuccess: _, lastError, ...rest } = s;
      return [p, { ...rest, lastError: lastError?.code }];
    }),
  );
  return { refs, manifest: await readFile(join(toplevel, 'manifest.js.gz')), recorded };
}

test('after a settled run a push arrives through the manifest read as an edit, and the replica ends as a full reading leaves it', async (t) => {
  const origin = await startOrigin(t);
  const { a, b } = await twins(t, origin);
  await push(origin, '/pub/sub/beta.git');
  const edit = await pullReport(a.config);
  // -n reads the manifest whole (and looks at every repository): the reference
  const whole = await pullReport(b.config, '-n');
  t.is(edit.code, 0, edit.stderr);
  t.is(whole.code, 0, whole.stderr);
  t.deepEqual(edit.report.manifest.edit, { changed: 1, removed: 0 });
  t.is(whole.report.manifest.edit, null);
  t.deepEqual(edit.report.counts, whole.report.counts);
  t.like(edit.report.counts, { updated: 1, unchanged: 2, failed: 0 });
  t.deepEqual(edit.report.repos, whole.report.repos);
  t.deepEqual(await holdings(a.toplevel), await holdings(b.toplevel));
  t.is(await showRefOf(join(a.toplevel, 'pub/sub/beta.git')), await showRefOf(origin.repos['/pub/sub/beta.git']!.bare));
  // and it settles again: the next push is read as an edit too
  await push(origin, '/pub/alpha.git');
  const next = await pullReport(a.config);
  t.deepEqual(next.report.manifest.edit, { changed: 1, removed: 0 });
  t.like(next.report.counts, { updated: 1, unchanged: 2, failed: 0 });
});

test('a description changed at the origin reaches the replica through an edit', async (t) => {
  const origin = await startOrigin(t);
  const { a } = await twins(t, origin);
  await writeDescription(origin, '/pub/sub/beta.git', 'Beta, renamed');
  await origin.publish();
  const r = await pullReport(a.config);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.report.manifest.edit, { changed: 1, removed: 0 });
  t.like(r.report.counts, { metadata: 1, unchanged: 2 });
  t.is((await readFile(join(a.toplevel, 'pub/sub/beta.git/description'), 'utf8')).trim(), 'Beta, renamed');
});

test('a failure pending, or a changed config, makes the next changed manifest be read whole, and the failed repository is retried', async (t) => {
  const origin = await startOrigin(t);
  const { a } = await twins(t, origin);
  await breakBeta(origin);
  const failed = await pullReport(a.config);
  t.not(failed.code, 0);
  t.deepEqual(
    failed.report.repos.filter((r) => r.action === 'failed').map((r) => [r.path, r.error?.code]),
    [['/pub/sub/beta.git', 'E_BUNDLE_VERIFY']],
  );
  await push(origin, '/pub/alpha.git');
  const retried = await pullReport(a.config);
  t.is(retried.report.manifest.edit, null, 'read whole: a repository is still failing');
  t.deepEqual(
    retried.report.repos.map((r) => [r.path, r.action]),
    [
      ['/pub/alpha.git', 'updated'],
      ['/pub/sub/beta.git', 'failed'],
    ],
  );
});

test('a replica whose config changed since it settled reads the next changed manifest whole', async (t) => {
  const origin = await startOrigin(t);
  const { a } = await twins(t, origin);
  // include, exclude and the rest may have changed: what was settled may not be what this config selects
  const later = new Date(Date.now() + 5000);
  await utimes(a.config, later, later);
  await push(origin, '/pub/alpha.git');
  const r = await pullReport(a.config);
  t.is(r.code, 0, r.stderr);
  t.is(r.report.manifest.edit, null);
  t.like(r.report.counts, { updated: 1, unchanged: 2 });
  // and that run settles it again
  await push(origin, '/pub/alpha.git');
  t.deepEqual((await pullReport(a.config)).report.manifest.edit, { changed: 1, removed: 0 });
});

test('a repository removed at the origin is named by the edit and handled as a full reading handles it', async (t) => {
  const origin = await startOrigin(t);
  const { a, b } = await twins(t, origin);
  const fork = origin.repos['/pub/forks/alpha-fork.git']!.bare;
  await rm(fork, { recursive: true, force: true });
  await origin.publish('-x', fork);
  const edit = await pullReport(a.config);
  const whole = await pullReport(b.config, '-n');
  // alpha's entry changes too: its forkgroup lost a member
  t.is(edit.report.manifest.edit?.removed, 1);
  t.deepEqual(edit.report.counts, whole.report.counts);
  t.deepEqual(edit.report.repos, whole.report.repos);
  t.deepEqual(await holdings(a.toplevel), await holdings(b.toplevel));
  // purge is off: the repository stays until a run purges it
  t.is(
    (await git(['rev-parse', '--is-bare-repository'], { gitDir: join(a.toplevel, 'pub/forks/alpha-fork.git') })).code,
    0,
  );
  const purged = await pullReport(a.config, '-p', '--force-purge');
  t.deepEqual(
    purged.report.repos.map((r) => [r.path, r.action]),
    [['/pub/forks/alpha-fork.git', 'purged']],
  );
});

async function writeDescription(origin: Origin, path: string, text: string): Promise<void> {
  await writeFile(join(origin.repos[path]!.bare, 'description'), text + '\n');
}

test('a repository a settled run left at a newer fingerprint than its entry is still brought to the entry when a later edit leaves that entry as it was', async (t) => {
  const origin = await startOrigin(t);
  const manifestFile = join(origin.out, 'manifest.js.gz');
  const first = await readFile(manifestFile);
  // the origin mid-publish: beta's index already at a push the manifest does not name yet
  const beta = origin.repos['/pub/sub/beta.git']!;
  const entryRefs = await showRefOf(beta.bare);
  await beta.wt.commit('pushed, then taken back');
  await beta.wt.push('main');
  await origin.publish();
  await writeFile(manifestFile, first);
  const a = await replicaFor(origin, 'a');
  const settled = await pullReport(a.config);
  t.is(settled.code, 0, settled.stderr);
  // the index vouched for beta's newer refs: the run kept them, and settled
  t.is(await showRefOf(join(a.toplevel, 'pub/sub/beta.git')), await showRefOf(beta.bare));
  // the push is taken back (beta's entry is again the one the replica settled) and alpha moves on
  await beta.wt.run(['reset', '--hard', 'HEAD~1']);
  await beta.wt.push('main');
  t.is(await showRefOf(beta.bare), entryRefs);
  await push(origin, '/pub/alpha.git');
  const r = await pullReport(a.config);
  t.is(r.code, 0, r.stderr);
  // alpha's entry alone changed: beta's is the settled one again
  t.deepEqual(r.report.manifest.edit, { changed: 1, removed: 0 });
  t.is(await showRefOf(join(a.toplevel, 'pub/sub/beta.git')), await showRefOf(beta.bare));
  t.is(await showRefOf(join(a.toplevel, 'pub/alpha.git')), await showRefOf(origin.repos['/pub/alpha.git']!.bare));
});

test("a daemon's refresh, which leaves the schedules' repositories to them, keeps every repository in the local manifest when it reads the manifest as an edit", async (t) => {
  const origin = await startOrigin(t);
  const a = await replicaFor(origin, 'a', '\n[schedule "forks"]\ncron = 0 3 * * *\ninclude = /pub/forks/*\n');
  // a plain pull covers every repository, and settles the manifest
  t.is((await pull(a.config)).code, 0);
  await push(origin, '/pub/alpha.git');
  const config = await readPullConfig(a.config);
  const log = createPullLog({ file: join(origin.dir, 'refresh.log'), level: 'info', console: 'quiet' });
  // what the daemon's refresh job runs: everything but the schedules' repositories
  const report = await pullInProcess(config, { ...pullScopeOf({ trigger: 'refresh' }, config, {}), log });
  t.deepEqual(report.failed, []);
  t.deepEqual(report.manifestEdit, { changed: 1, removed: 0 });
  t.deepEqual(report.updated, ['/pub/alpha.git']);
  t.is(report.unchanged, 1, "beta, in the refresh's part, unchanged");
  const local = JSON.parse(gunzipSync(await readFile(join(a.toplevel, 'manifest.js.gz'))).toString('utf8')) as Record<
    string,
    { fingerprint: string }
  >;
  t.deepEqual(Object.keys(local).sort(), [...PATHS].sort());
  const published = JSON.parse(
    gunzipSync(await readFile(join(origin.out, 'manifest.js.gz'))).toString('utf8'),
  ) as Record<string, { fingerprint: string }>;
  t.is(local['/pub/alpha.git']!.fingerprint, published['/pub/alpha.git']!.fingerprint);
  t.is(local['/pub/sub/beta.git']!.fingerprint, published['/pub/sub/beta.git']!.fingerprint);
});

test("a refresh that left a schedule's repositories behind does not settle the manifest: the next full pull still brings them up to it", async (t) => {
  const origin = await startOrigin(t);
  const a = await replicaFor(origin, 'a', '\n[schedule "forks"]\ncron = 0 3 * * *\ninclude = /pub/forks/*\n');
  t.is((await pull(a.config)).code, 0);
  const fork = '/pub/forks/alpha-fork.git';
  await writeDescription(origin, fork, 'Fork, renamed');
  await origin.publish();
  const config = await readPullConfig(a.config);
  const log = createPullLog({ file: join(origin.dir, 'refresh.log'), level: 'info', console: 'quiet' });
  const refresh = await pullInProcess(config, { ...pullScopeOf({ trigger: 'refresh' }, config, {}), log });
  t.deepEqual(refresh.failed, []);
  // the fork is the schedule's: the refresh leaves its description as it was
  t.not((await readFile(join(a.toplevel, 'pub/forks/alpha-fork.git/description'), 'utf8')).trim(), 'Fork, renamed');
  // a later change elsewhere, and a plain pull, which answers for every repository
  await push(origin, '/pub/sub/beta.git');
  const r = await pullReport(a.config);
  t.is(r.code, 0, r.stderr);
  t.is((await readFile(join(a.toplevel, 'pub/forks/alpha-fork.git/description'), 'utf8')).trim(), 'Fork, renamed');
});
