import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import { makeFork, makeRepo, showRefOf, tempDir } from './support/repos.js';
import { dropMember, memberId, syncVirtualRefs } from '../src/replica/sync/objstore.js';
import { openState } from '../src/replica/state.js';
import { pull, pullReport, replicaFor, startOrigin } from './support/mirror.js';
import type { ExecutionContext } from 'ava';

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
}

async function threeForks(t: ExecutionContext) {
  const origin = await startOrigin(t, { bigBytes: 300_000 });
  const alpha = origin.repos['/pub/alpha.git']!;
  const second = await makeFork(origin.dir, origin.toplevel, alpha.bare, 'pub/forks/alpha-two.git');
  t.truthy(second);
  await origin.publish();
  return origin;
}

/** The three forks mirrored once by a replica that purges what the origin drops. */
async function purgingMirrorOfThreeForks(t: ExecutionContext) {
  const origin = await threeForks(t);
  const { config, toplevel } = await replicaFor(
    origin,
    'replica',
    'include = /pub/alpha.git\n  /pub/forks/*\npurge = yes\npurgeprotect = 100\n',
  );
  t.is((await pull(config)).code, 0);
  return { origin, config, toplevel };
}

const FORKS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/forks/alpha-two.git'];

test('three forks mirror with their shared history downloaded once and stored once', async (t) => {
  const origin = await threeForks(t);
  const { config, toplevel } = await replicaFor(origin, 'replica', 'include = /pub/alpha.git\n  /pub/forks/*\n');
  const r = await pull(config, '-v');
  t.is(r.code, 0, r.stderr);
  for (const p of FORKS) {
    t.is(await showRefOf(join(toplevel, p)), await showRefOf(join(origin.toplevel, p)), p);
    const fsck = await git(['fsck', '--no-dangling'], { gitDir: join(toplevel, p), okCodes: [1, 2, 4] });
    t.is(fsck.code, 0, fsck.stderr);
  }
  const downloaded = Number(/downloaded ([\d.]+) MiB/.exec(r.stdout)?.[1] ?? 'NaN') * 2 ** 20;
  // a single copy: the parent's own bundles
  const parentIndex = JSON.parse(await readFile(join(origin.out, 'pub/alpha.git/index.json'), 'utf8')) as {
    bundles: { size: number }[];
  };
  const single = parentIndex.bundles.reduce((n, b) => n + b.size, 0);
  const wire = downloaded / single;
  const stores = await readdir(join(toplevel, 'objstore'));
  t.is(stores.length, 1, 'one shared store for the group');
  const disk =
    (du(join(toplevel, 'objstore')) + FORKS.reduce((n, p) => n + du(join(toplevel, p)), 0)) /
    du(join(origin.toplevel, 'pub/alpha.git'));
  t.log(
    `three forks: downloaded ${wire.toFixed(2)}x and stored ${disk.toFixed(2)}x a single copy (three independent mirrors: 3.0x)`,
  );
  t.true(wire < 1.2, `downloaded ${wire.toFixed(2)}x`);
  t.true(disk < 1.6, `stored ${disk.toFixed(2)}x`);
});

test('purging one member leaves the others intact; purging the last removes the shared store', async (t) => {
  const { origin, config, toplevel } = await purgingMirrorOfThreeForks(t);
  await rm(join(origin.toplevel, 'pub/forks/alpha-fork.git'), { recursive: true });
  await origin.publish();
  const r = await pullReport(config);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { purged: 1 });
  for (const p of ['/pub/alpha.git', '/pub/forks/alpha-two.git']) {
    const fsck = await git(['fsck', '--no-dangling'], { gitDir: join(toplevel, p), okCodes: [1, 2, 4] });
    t.is(fsck.code, 0, `${p}: ${fsck.stderr}`);
    t.is(await showRefOf(join(toplevel, p)), await showRefOf(join(origin.toplevel, p)));
  }
  await rm(join(origin.toplevel, 'pub/alpha.git'), { recursive: true });
  await rm(join(origin.toplevel, 'pub/forks/alpha-two.git'), { recursive: true });
  await makeRepo(origin.dir, origin.toplevel, 'pub/forks/unrelated.git');
  await origin.publish();
  const last = await pull(config, '--force-purge');
  t.is(last.code, 0, last.stderr);
  t.deepEqual(await readdir(join(toplevel, 'objstore')).catch(() => []), [], 'the store went with its last member');
  t.truthy(await stat(join(toplevel, 'pub/forks/unrelated.git')));
});

/** New bundle files (and their bytes) a publish wrote into the published tree. */
async function bundleFiles(out: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  for (const e of await readdir(out, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.bundle'))
      files.set(join(e.parentPath, e.name), (await stat(join(e.parentPath, e.name))).size);
  }
  return files;
}

async function newBundleBytes(
  origin: Awaited<ReturnType<typeof startOrigin>>,
  change: () => Promise<unknown>,
): Promise<number> {
  const before = await bundleFiles(origin.out);
  await change();
  await origin.publish();
  let bytes = 0;
  for (const [file, size] of await bundleFiles(origin.out)) if (!before.has(file)) bytes += size;
  return bytes;
}

const DIVERGED = [
  '/pub/alpha.git',
  '/pub/forks/alpha-fork.git',
  '/pub/forks/alpha-two.git',
  '/pub/forks/alpha-three.git',
];

test('forks that diverged from their parent download and store the shared history once; a push to any of them publishes little', async (t) => {
  // 4 MB of shared history; then each fork adds a commit of its own and the parent two the forks lack
  const origin = await startOrigin(t, { bigBytes: 1_000_000 });
  const alpha = origin.repos['/pub/alpha.git']!;
  const forks = [origin.repos['/pub/forks/alpha-fork.git']!];
  for (const name of ['alpha-two', 'alpha-three'])
    forks.push(await makeFork(origin.dir, origin.toplevel, alpha.bare, `pub/forks/${name}.git`));
  // every ref of the parent moves past what the forks hold
  await alpha.wt.commit('parent moves on 1');
  await alpha.wt.commit('parent moves on 2');
  await alpha.wt.run(['branch', '--force', 'devel', 'HEAD']);
  await alpha.wt.push('main', 'devel', ':refs/tags/v1.0');
  await origin.publish();
  const { config, toplevel } = await replicaFor(origin, 'replica', 'include = /pub/alpha.git\n  /pub/forks/*\n');
  const r = await pull(config, '-v');
  t.is(r.code, 0, r.stderr);
  for (const p of DIVERGED) {
    t.is(await showRefOf(join(toplevel, p)), await showRefOf(join(origin.toplevel, p)), p);
    const fsck = await git(['fsck', '--no-dangling'], { gitDir: join(toplevel, p), okCodes: [1, 2, 4] });
    t.is(fsck.code, 0, `${p}: ${fsck.stderr}`);
  }
  const downloaded = Number(/downloaded ([\d.]+) MiB/.exec(r.stdout)?.[1] ?? 'NaN') * 2 ** 20;
  const parentIndex = JSON.parse(await readFile(join(origin.out, 'pub/alpha.git/index.json'), 'utf8')) as {
    bundles: { size: number }[];
  };
  const single = parentIndex.bundles.reduce((n, b) => n + b.size, 0);
  const wire = downloaded / single;
  const disk =
    (du(join(toplevel, 'objstore')) + DIVERGED.reduce((n, p) => n + du(join(toplevel, p)), 0)) /
    du(join(origin.toplevel, 'pub/alpha.git'));
  t.log(
    `three diverged forks and their parent: downloaded ${wire.toFixed(3)}x and stored ${disk.toFixed(3)}x a single copy`,
  );
  t.true(wire <= 1.1, `downloaded ${wire.toFixed(3)}x`);
  t.true(disk <= 1.15, `stored ${disk.toFixed(3)}x`);

  // one commit pushed to a member, then to the parent: small new bundles, and the replica applies them
  const member = await newBundleBytes(origin, async () => {
    await forks[1]!.wt.commit('member push');
    await forks[1]!.wt.push('main');
  });
  t.true(member > 0 && member < 64 * 1024, `member push wrote ${member} B of bundles`);
  const parent = await newBundleBytes(origin, async () => {
    await alpha.wt.commit('parent push');
    await alpha.wt.push('main');
  });
  t.true(parent > 0 && parent < 64 * 1024, `parent push wrote ${parent} B of bundles`);
  const again = await pull(config, '-v');
  t.is(again.code, 0, again.stderr);
  t.notRegex(again.stderr + again.stdout, /git fetch/, 'bundles alone bring the pushes');
  for (const p of DIVERGED) t.is(await showRefOf(join(toplevel, p)), await showRefOf(join(origin.toplevel, p)), p);
});

test('a diverged fork mirrored without its parent still syncs from its bundles', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 100_000 });
  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('parent moves on');
  await alpha.wt.run(['branch', '--force', 'devel', 'HEAD']);
  await alpha.wt.push('main', 'devel', ':refs/tags/v1.0');
  await origin.publish();
  const { config, toplevel } = await replicaFor(origin, 'replica', 'include = /pub/forks/*\n');
  const r = await pull(config, '-v');
  t.is(r.code, 0, r.stderr);
  const p = '/pub/forks/alpha-fork.git';
  t.is(await showRefOf(join(toplevel, p)), await showRefOf(join(origin.toplevel, p)));
  const fsck = await git(['fsck', '--no-dangling'], { gitDir: join(toplevel, p), okCodes: [1, 2, 4] });
  t.is(fsck.code, 0, fsck.stderr);
});

test('a purge cut short after any of its steps is finished by the next purge run: no state entry, no store refs, no leftover directory', async (t) => {
  const { origin, config, toplevel } = await purgingMirrorOfThreeForks(t);
  const [fork, two] = ['/pub/forks/alpha-fork.git', '/pub/forks/alpha-two.git'];
  for (const p of [fork, two]) await rm(join(origin.toplevel, p), { recursive: true });
  await origin.publish();
  const [storeName] = await readdir(join(toplevel, 'objstore'));
  const store = join(toplevel, 'objstore', storeName!);
  // what a purge killed at each step leaves: the state entry gone (fork), the store's refs gone too (two),
  // and the repository half deleted in staging (a kill inside its removal)
  const state = await openState(toplevel);
  await state.remove(fork, two);
  t.false(await dropMember(store, two));
  await mkdir(join(toplevel, '.bundlemirror', 'staging', 'purged-0123456789ab', 'objects'), { recursive: true });

  const r = await pullReport(config);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(
    r.report.repos.filter((e) => e.action === 'purged').map((e) => e.path),
    [fork, two],
  );
  for (const p of [fork, two]) await t.throwsAsync(stat(join(toplevel, p)), undefined, `${p} is gone`);
  t.deepEqual(Object.keys(await (await openState(toplevel)).all()), ['/pub/alpha.git']);
  const virtual = await git(['for-each-ref', '--format=%(refname)', 'refs/virtual/'], { gitDir: store });
  t.deepEqual(
    [
      ...new Set(
        virtual.stdout
          .toString()
          .trim()
          .split('\n')
          .map((n) => n.split('/')[2]),
      ),
    ],
    [memberId('/pub/alpha.git')],
    'the store keeps only the member that stays',
  );
  t.deepEqual(await readdir(join(toplevel, '.bundlemirror', 'staging')).catch(() => []), []);
  const fsck = await git(['fsck', '--no-dangling'], { gitDir: join(toplevel, 'pub/alpha.git'), okCodes: [1, 2, 4] });
  t.is(fsck.code, 0, fsck.stderr);
});

test('two members of one store purged at once: the store goes exactly once and neither purge fails', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const { bare } = await makeRepo(dir, join(dir, 'top'), 'store.git', { commits: 2 });
  const oid = (await showRefOf(bare)).split(' ')[0]!;
  for (const member of ['/pub/a.git', '/pub/b.git', '/pub/c.git'])
    await syncVirtualRefs(bare, member, { 'refs/heads/main': oid });
  // a store holds only its members' virtual refs
  for (const line of (await showRefOf(bare)).trim().split('\n')) {
    const name = line.split(' ')[1]!;
    if (!name.startsWith('refs/virtual/')) await git(['update-ref', '-d', name], { gitDir: bare });
  }
  const [c, a, b] = await Promise.all([
    dropMember(bare, '/pub/c.git'),
    dropMember(bare, '/pub/a.git'),
    dropMember(bare, '/pub/b.git'),
  ]);
  t.deepEqual([a, b, c].filter(Boolean).length, 1, 'the last one removed the store');
  await t.throwsAsync(stat(bare));
});
