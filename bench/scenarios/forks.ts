/**
 * Scenario 7: a project and two forks of it (three repositories sharing
 * most history). Ours: publish, pull into an empty replica with
 * `[core] objstore` set (grokmirror's key for shared object stores).
 * Theirs: three independent `git clone --mirror`. Bytes on the wire and
 * disk used. Forkgroup support is detected, not assumed: the row says
 * whether the manifest carried forkgroups and whether the replica shares
 * objects, so the scenario means the same thing before and after it lands.
 */
import { execFileSync } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { startFaultProxy } from '../../test/support/fault-proxy.js';
import { addRow, writeReplicaConfig, type BenchContext } from '../lib/context.js';
import { diskUsage, largeRepo, pushCommit, runGit } from '../lib/data.js';
import { bundlemirror, gitTimed } from '../lib/proc.js';
import { startGitDaemon, startServe } from '../lib/servers.js';

const REPOS = ['/pub/project.git', '/pub/forks/alice.git', '/pub/forks/bob.git'];

async function hasAlternates(dir: string): Promise<boolean> {
  return stat(join(dir, 'objects', 'info', 'alternates')).then(
    () => true,
    () => false,
  );
}

export async function forks(ctx: BenchContext): Promise<void> {
  const spec = ctx.sizes.forkBase;
  const base = await largeRepo(join(ctx.cache, `fork-base-${spec.seed}.git`), spec);
  const toplevel = join(ctx.work, 'fork-origin');
  const out = join(ctx.work, 'fork-published');
  const dirOf = (top: string, p: string) => join(top, ...p.slice(1).split('/'));
  execFileSync('mkdir', ['-p', join(toplevel, 'pub', 'forks')]);
  execFileSync('cp', ['-al', base.dir, dirOf(toplevel, REPOS[0]!)]);
  for (const [i, p] of REPOS.slice(1).entries()) {
    // a fork as a forge makes it: a clone of the project, then its own commits
    await runGit(['clone', '--bare', '--quiet', dirOf(toplevel, REPOS[0]!), dirOf(toplevel, p)]);
    for (let j = 0; j < 3; j++)
      await pushCommit(dirOf(toplevel, p), {
        seed: `fork-${i}-${j}`,
        bytes: 32 << 10,
        branch: 'main',
        time: 1_800_000_000 + j,
      });
  }
  await bundlemirror(['publish', '--quiet', '--toplevel', toplevel, '--out', out], { timeoutMs: 900_000 });
  const manifest = JSON.parse(gunzipSync(await readFile(join(out, 'manifest.js.gz'))).toString('utf8')) as Record<
    string,
    { forkgroup?: string | null }
  >;
  const groups = new Set(REPOS.map((p) => manifest[p]?.forkgroup).filter((g): g is string => !!g));
  const serve = await startServe(out, toplevel);
  const daemon = await startGitDaemon(toplevel);
  const httpProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: serve.port } });
  const gitProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: daemon.port } });
  try {
    const replica = join(ctx.work, 'fork-replica');
    // grokmirror's key; a bundlemirror that does not know it yet says so and mirrors each repository on its own
    const conf = await writeReplicaConfig(join(ctx.work, 'fork-replica.conf'), replica, httpProxy.url(''), {
      coreExtra: `objstore = ${join(replica, 'objstore')}\n`,
    });
    const ours = await bundlemirror(['pull', '-c', conf, '--no-progress', '-q'], {
      timeoutMs: 900_000,
      allowFail: true,
    });
    const oursBytes = httpProxy.stats.bytesDownstream;
    const oursDisk = await diskUsage(replica);
    const shared = (await Promise.all(REPOS.map((p) => hasAlternates(dirOf(replica, p))))).filter(Boolean).length;

    const mirrors = join(ctx.work, 'fork-mirrors');
    for (const p of REPOS) {
      await gitTimed(['clone', '--quiet', '--mirror', `git://127.0.0.1:${gitProxy.port}${p}`, dirOf(mirrors, p)], {
        timeoutMs: 900_000,
      });
    }
    const theirsBytes = gitProxy.stats.bytesDownstream;
    const theirsDisk = await diskUsage(mirrors);
    const status = `forkgroups in manifest: ${groups.size ? `${groups.size} group(s)` : 'none'}; replica repos sharing objects: ${shared}/3${ours.code === 0 ? '' : `; pull exit ${ours.code}`}`;
    addRow(ctx, {
      scenario: '7 Forkgroups',
      measure: 'project + 2 forks, bytes on the wire',
      unit: 'bytes',
      ours: oursBytes,
      theirsLabel: '3 x `git clone --mirror` git://',
      theirs: theirsBytes,
      note: status,
    });
    addRow(ctx, {
      scenario: '7 Forkgroups',
      measure: 'project + 2 forks, disk used',
      unit: 'bytes',
      ours: oursDisk,
      theirsLabel: '3 independent mirrors',
      theirs: theirsDisk,
      note: shared ? 'shared object store' : 'no sharing yet (current behaviour)',
    });
    ctx.facts.forks = {
      basePackBytes: base.packBytes,
      groups: [...groups],
      shared,
      pullCode: ours.code,
      pullStderr: ours.stderr.slice(-1500),
    };
  } finally {
    await httpProxy.close();
    await gitProxy.close();
    await serve.stop();
    await daemon.stop();
  }
}

/** Bundle files under the published tree, with their sizes. */
async function bundleFiles(out: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  for (const e of await readdir(out, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.bundle'))
      files.set(join(e.parentPath, e.name), (await stat(join(e.parentPath, e.name))).size);
  }
  return files;
}

/**
 * Scenario 7b: forks that diverged, as real forks do. Two forks cloned
 * with only `main` (no tags) add commits of their own; then the project
 * moves every branch on, so no tip of the project is in a fork. Bytes on
 * the wire and disk against one copy of the project, and the new bundle
 * bytes a one-commit push to a fork and to the project makes the origin
 * write.
 */
export async function forksDiverged(ctx: BenchContext): Promise<void> {
  const spec = ctx.sizes.forkBase;
  const base = await largeRepo(join(ctx.cache, `fork-base-${spec.seed}.git`), spec);
  const toplevel = join(ctx.work, 'diverged-origin');
  const out = join(ctx.work, 'diverged-published');
  const dirOf = (top: string, p: string) => join(top, ...p.slice(1).split('/'));
  const project = dirOf(toplevel, REPOS[0]!);
  execFileSync('mkdir', ['-p', join(toplevel, 'pub', 'forks')]);
  execFileSync('cp', ['-al', base.dir, project]);
  for (const [i, p] of REPOS.slice(1).entries()) {
    await runGit([
      'clone',
      '--bare',
      '--quiet',
      '--single-branch',
      '--branch',
      'main',
      '--no-tags',
      project,
      dirOf(toplevel, p),
    ]);
    for (let j = 0; j < 3; j++)
      await pushCommit(dirOf(toplevel, p), {
        seed: `diverged-fork-${i}-${j}`,
        bytes: 32 << 10,
        branch: 'main',
        time: 1_800_000_000 + j,
      });
  }
  const branches = (await runGit(['--git-dir', project, 'for-each-ref', '--format=%(refname:short)', 'refs/heads/']))
    .split('\n')
    .filter(Boolean);
  for (const [k, b] of branches.entries())
    await pushCommit(project, { seed: `diverged-project-${k}`, bytes: 32 << 10, branch: b, time: 1_800_000_100 + k });
  await bundlemirror(['publish', '--quiet', '--toplevel', toplevel, '--out', out], { timeoutMs: 900_000 });
  const projectIndex = JSON.parse(await readFile(join(out, 'pub', 'project.git', 'index.json'), 'utf8')) as {
    bundles: { size: number }[];
  };
  const oneCopyBytes = projectIndex.bundles.reduce((n, b) => n + b.size, 0);
  const oneCopyDisk = await diskUsage(project);
  const serve = await startServe(out, toplevel);
  const daemon = await startGitDaemon(toplevel);
  const httpProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: serve.port } });
  const gitProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: daemon.port } });
  try {
    const replica = join(ctx.work, 'diverged-replica');
    const conf = await writeReplicaConfig(join(ctx.work, 'diverged-replica.conf'), replica, httpProxy.url(''), {
      coreExtra: `objstore = ${join(replica, 'objstore')}\n`,
    });
    const ours = await bundlemirror(['pull', '-c', conf, '--no-progress', '-q'], {
      timeoutMs: 900_000,
      allowFail: true,
    });
    const oursBytes = httpProxy.stats.bytesDownstream;
    const oursDisk = await diskUsage(replica);
    const mirrors = join(ctx.work, 'diverged-mirrors');
    for (const p of REPOS)
      await gitTimed(['clone', '--quiet', '--mirror', `git://127.0.0.1:${gitProxy.port}${p}`, dirOf(mirrors, p)], {
        timeoutMs: 900_000,
      });
    const note =
      ours.code === 0
        ? `one copy: ${(oneCopyBytes / 2 ** 20).toFixed(1)} MiB of bundles, ${(oneCopyDisk / 2 ** 20).toFixed(1)} MiB on disk`
        : `pull exit ${ours.code}`;
    addRow(ctx, {
      scenario: '7 Forkgroups',
      measure: 'project + 2 diverged forks, bytes on the wire / one copy of the project',
      unit: 'x',
      ours: oursBytes / oneCopyBytes,
      theirsLabel: '3 x `git clone --mirror` git://',
      theirs: gitProxy.stats.bytesDownstream / oneCopyBytes,
      target: '<= 1.1x one copy',
      met: ours.code === 0 && oursBytes / oneCopyBytes <= 1.1,
      note,
    });
    const theirsDisk = await diskUsage(mirrors);
    addRow(ctx, {
      scenario: '7 Forkgroups',
      measure: 'project + 2 diverged forks, disk used / one copy of the project',
      unit: 'x',
      ours: oursDisk / oneCopyDisk,
      theirsLabel: '3 independent mirrors',
      theirs: theirsDisk / oneCopyDisk,
      target: '<= 1.15x one copy',
      met: ours.code === 0 && oursDisk / oneCopyDisk <= 1.15,
    });
    for (const [who, dir, branch] of [
      ['a fork', dirOf(toplevel, REPOS[1]!), 'main'],
      ['the project', project, 'main'],
    ] as const) {
      const before = await bundleFiles(out);
      await pushCommit(dir, { seed: `diverged-push-${who}`, bytes: 4 << 10, branch, time: 1_800_000_500 });
      await bundlemirror(['publish', '--quiet', '--toplevel', toplevel, '--out', out], { timeoutMs: 900_000 });
      let added = 0;
      for (const [f, size] of await bundleFiles(out)) if (!before.has(f)) added += size;
      addRow(ctx, {
        scenario: '7 Forkgroups',
        measure: `one 4 KiB commit pushed to ${who}: new bundle bytes on the origin`,
        unit: 'bytes',
        ours: added,
        theirsLabel: '',
        theirs: null,
        target: '< 64 KiB',
        met: added < 64 << 10,
      });
    }
    ctx.facts.forksDiverged = {
      oneCopyBytes,
      oneCopyDisk,
      oursBytes,
      oursDisk,
      pullCode: ours.code,
      pullStderr: ours.stderr.slice(-1500),
    };
  } finally {
    await httpProxy.close();
    await gitProxy.close();
    await serve.stop();
    await daemon.stop();
  }
}
