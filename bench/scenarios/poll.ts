/**
 * Scenario 3 (and 5b, 5c on the same fleet): a replica of 10,000
 * repositories, all in sync, polls its origin.
 * - manifest unchanged: the 304 path;
 * - manifest changed for one repository (a push, published by the hook):
 *   the planner must skip the other 9,999 without a git process each.
 * `pull` runs in this process (src/replica/pull.ts) so gitProcessCount()
 * counts its git processes; the CLI's wall time (start-up included) is
 * reported too. Against: a cron'd `git fetch` loop over a smaller number of
 * the same repositories from git daemon, extrapolated (what a mirror
 * without a manifest does; grokmirror itself also skips by fingerprint).
 *
 * The fleet is generated once into the bench cache and restored (only the
 * repositories a run touched) at the start of the next run.
 */
import { readFile, writeFile, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { addRow, replicaConfigText, writeReplicaConfig, type BenchContext } from '../lib/context.js';
import { fleetPaths, makeFleet } from '../lib/fleet.js';
import { pushCommit } from '../lib/data.js';
import { bundlemirror, gitTimed } from '../lib/proc.js';
import { median } from '../lib/report.js';
import { startGitDaemon, startServe, type Running } from '../lib/servers.js';
import { takeGitSpans } from '../lib/trace-git.js';
import { gitProcessCount } from '../../src/git/exec.js';
import { loadPullConfig, parsePullConfig } from '../../src/replica/config/config.js';
import { createPullLog } from '../../src/replica/log.js';
import { pull } from '../../src/replica/pull.js';

interface Fleet {
  root: string;
  origin: string;
  out: string;
  replica?: string;
}

/** Raised whenever what makeFleet writes changes, so a cached fleet is generated again. */
const FLEET_VERSION = 2;

/** The cached fleet of `n` repositories, generated or restored to its pristine state. */
async function fleet(ctx: BenchContext, n: number, withReplica: boolean): Promise<Fleet> {
  const root = join(ctx.cache, `fleet-${n}${withReplica ? '-replica' : ''}-v${FLEET_VERSION}`);
  const f: Fleet = {
    root,
    origin: join(root, 'origin'),
    out: join(root, 'published'),
    replica: withReplica ? join(root, 'replica') : undefined,
  };
  // the owner the replica's pull gives a repository whose entry names none, from the config it runs with
  const replicaConf = replicaConfigText(join(ctx.work, 'fleet-replica.conf'), root, 'http://127.0.0.1');
  const replicaOwner = parsePullConfig(replicaConf, { realpath: false }).pull.defaultOwner;
  const ready = join(root, 'ready');
  const dirtyFile = join(root, 'dirty.json');
  const t = Date.now();
  if (
    await readFile(ready).then(
      () => true,
      () => false,
    )
  ) {
    const dirty = JSON.parse(await readFile(dirtyFile, 'utf8').catch(() => '[]')) as string[];
    await makeFleet({ n, origin: f.origin, out: f.out, replica: f.replica, replicaOwner, only: new Set(dirty) });
    ctx.log(`fleet of ${n}: restored ${dirty.length} repositories (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } else {
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    await makeFleet({ n, origin: f.origin, out: f.out, replica: f.replica, replicaOwner });
    await writeFile(ready, '');
    ctx.log(`fleet of ${n}: generated (${((Date.now() - t) / 1000).toFixed(1)} s, cached for the next run)`);
  }
  await writeFile(dirtyFile, '[]');
  return f;
}

async function markDirty(f: Fleet, path: string): Promise<void> {
  const file = join(f.root, 'dirty.json');
  const dirty = new Set(JSON.parse(await readFile(file, 'utf8').catch(() => '[]')) as string[]);
  dirty.add(path);
  await writeFile(file, JSON.stringify([...dirty]));
}

const dirOf = (top: string, p: string) => join(top, ...p.slice(1).split('/'));

export async function poll(ctx: BenchContext): Promise<void> {
  const n = ctx.sizes.pollRepos;
  const f = await fleet(ctx, n, true);
  const serve = await startServe(f.out, f.origin);
  const daemon = await startGitDaemon(f.origin);
  try {
    await pollScenario(ctx, f, n, serve);
    await fetchLoop(ctx, f, n, daemon);
  } finally {
    await serve.stop();
    await daemon.stop();
  }
  if (ctx.sizes.publishRepos === n) await noopPublish(ctx, f, n);
  else await noopPublish(ctx, await fleet(ctx, ctx.sizes.publishRepos, false), ctx.sizes.publishRepos);
}

async function pollScenario(ctx: BenchContext, f: Fleet, n: number, serve: Running): Promise<void> {
  // the replica's own manifest and log live in this run's directory
  const conf = await writeReplicaConfig(join(ctx.work, 'fleet-replica.conf'), f.replica!, serve.url);
  const text = (await readFile(conf, 'utf8')).replace(
    /^manifest = .*$/m,
    `manifest = ${join(ctx.work, 'fleet-local-manifest.js.gz')}`,
  );
  await writeFile(conf, text);
  const config = loadPullConfig(conf);
  const log = createPullLog({ file: config.core.log, level: 'info', console: 'quiet' });
  const inProcess = async () => {
    takeGitSpans();
    const g0 = gitProcessCount();
    const t = performance.now();
    const report = await pull(config, { log });
    const ms = performance.now() - t;
    const spans = takeGitSpans();
    if (report.failed.length)
      throw new Error(
        `fleet pull failed: ${report.failed
          .map((e) => e.message)
          .join('; ')
          .slice(0, 500)}`,
      );
    return { ms, git: gitProcessCount() - g0, gitMs: spans.reduce((s, x) => s + x.ms, 0), report };
  };

  // first poll after generation: the manifest is new to the replica, nothing to do
  const first = await inProcess();
  const skipped = first.report.plan?.summary.skip ?? first.report.unchanged;
  ctx.log(`   first poll: ${first.ms.toFixed(0)} ms, ${first.git} git processes, ${skipped} skipped`);
  addRow(ctx, {
    scenario: '3 Poll',
    measure: `${n.toLocaleString('en')} repos, manifest re-read, none changed, wall`,
    unit: 'ms',
    ours: first.ms,
    theirsLabel: '',
    theirs: null,
    note: `in-process; ${first.git} git processes`,
  });

  const unchanged: number[] = [];
  const unchangedGit: number[] = [];
  for (let i = 0; i < Math.max(3, ctx.reps); i++) {
    const r = await inProcess();
    if (!r.report.manifestUnchanged) throw new Error('expected the 304 path on an unchanged manifest');
    unchanged.push(r.ms);
    unchangedGit.push(r.git);
  }
  const cli: number[] = [];
  for (let i = 0; i < ctx.reps; i++)
    cli.push((await bundlemirror(['pull', '-c', conf, '--no-progress', '-q'], { timeoutMs: 120_000 })).wallMs);

  const hook: number[] = [];
  const hookCpu: number[] = [];
  const hookPublish = async (path: string) => {
    const r = await bundlemirror(
      ['publish', '--quiet', '--toplevel', f.origin, '--out', f.out, dirOf(f.origin, path)],
      { timeoutMs: 300_000 },
    );
    hook.push(r.wallMs);
    if (r.self) hookCpu.push(r.self.cpuMs);
  };
  const changed: number[] = [];
  const changedGit: number[] = [];
  const changedGitMs: number[] = [];
  for (let i = 0; i < ctx.reps; i++) {
    const path = fleetPaths(n)[(i * 7919 + 13) % n]!;
    await markDirty(f, path);
    await pushCommit(dirOf(f.origin, path), { seed: `fleet-${i}`, bytes: 4096, time: 1_800_000_000 + i });
    await hookPublish(path);
    const r = await inProcess();
    if (r.report.updated.length !== 1)
      throw new Error(
        `expected one updated repository, got ${JSON.stringify(r.report.updated)} (${r.report.failed.length} failed)`,
      );
    changed.push(r.ms);
    changedGit.push(r.git);
    changedGitMs.push(r.gitMs);
  }
  // the same as a cron'd poll runs it: the CLI, start-up included (the target counts it)
  const changedCli: number[] = [];
  const changedCliCpu: number[] = [];
  for (let i = 0; i < ctx.reps; i++) {
    const path = fleetPaths(n)[(i * 7919 + 4099) % n]!;
    await markDirty(f, path);
    await pushCommit(dirOf(f.origin, path), { seed: `fleet-cli-${i}`, bytes: 4096, time: 1_900_000_000 + i });
    await hookPublish(path);
    const r = await bundlemirror(['pull', '-c', conf, '--no-progress'], { timeoutMs: 120_000 });
    if (!/updated 1,/.test(r.stdout)) throw new Error(`expected one updated repository, got: ${r.stdout.trim()}`);
    changedCli.push(r.wallMs);
    if (r.self) changedCliCpu.push(r.self.cpuMs);
  }
  const u = median(unchanged)!;
  addRow(ctx, {
    scenario: '3 Poll',
    measure: `${n.toLocaleString('en')} repos, manifest unchanged (304), wall`,
    unit: 'ms',
    ours: u,
    theirsLabel: '',
    theirs: null,
    target: '< 0.3 s',
    met: u < 300,
    note: `in-process; ${median(unchangedGit)} git processes`,
    samples: { ours: unchanged, theirs: [] },
  });
  addRow(ctx, {
    scenario: '3 Poll',
    measure: `${n.toLocaleString('en')} repos, manifest unchanged (304), wall`,
    unit: 'ms',
    ours: median(cli),
    theirsLabel: '',
    theirs: null,
    note: 'CLI incl. start-up',
    samples: { ours: cli, theirs: [] },
  });
  const c = median(changed)!;
  const own = median(changedGitMs)!;
  addRow(ctx, {
    scenario: '3 Poll',
    measure: `${n.toLocaleString('en')} repos, one changed, wall`,
    unit: 'ms',
    ours: c,
    theirsLabel: '',
    theirs: null,
    note: `in-process; ${median(changedGit)} git processes taking ${own.toFixed(0)} ms`,
    samples: { ours: changed, theirs: [] },
  });
  const cc = median(changedCli)!;
  addRow(ctx, {
    scenario: '3 Poll',
    measure: `${n.toLocaleString('en')} repos, one changed, wall`,
    unit: 'ms',
    ours: cc,
    theirsLabel: '',
    theirs: null,
    target: '0.5 s',
    met: cc <= 500,
    note: `CLI incl. start-up; CPU (user+sys) ${median(changedCliCpu)?.toFixed(0) ?? '?'} ms`,
    samples: { ours: changedCli, theirs: [] },
  });
  addRow(ctx, {
    scenario: '5 Publish',
    measure: `hook publish of one push in a ${n.toLocaleString('en')}-repository toplevel`,
    unit: 'ms',
    ours: median(hook),
    theirsLabel: '',
    theirs: null,
    target: '0.5 s',
    met: median(hook)! <= 500,
    note: `CLI incl. start-up; CPU (user+sys) ${median(hookCpu)?.toFixed(0) ?? '?'} ms`,
    samples: { ours: hook, theirs: [] },
  });
  ctx.facts.poll = {
    first: { ms: first.ms, git: first.git },
    unchanged,
    unchangedGit,
    cli,
    changed,
    changedGit,
    changedGitMs,
    changedCli,
    changedCliCpu,
    hook,
    hookCpu,
  };
}

/** A cron'd `git fetch` per repository, as a mirror without a manifest polls; measured on a few, extrapolated. */
async function fetchLoop(ctx: BenchContext, f: Fleet, n: number, daemon: Running): Promise<void> {
  const m = ctx.sizes.fetchLoopRepos;
  const paths = fleetPaths(n).slice(0, m);
  const t = performance.now();
  for (const p of paths) {
    await gitTimed(['--git-dir', dirOf(f.replica!, p), 'fetch', '--quiet', `${daemon.url}${p}`, '+refs/*:refs/*'], {
      timeoutMs: 60_000,
    });
  }
  const ms = performance.now() - t;
  addRow(ctx, {
    scenario: '3 Poll',
    measure: `${n.toLocaleString('en')} repos, nothing changed, wall`,
    unit: 'ms',
    ours: median((ctx.facts.poll as { unchanged: number[] }).unchanged),
    theirsLabel: `cron'd \`git fetch\` loop, git://, ${m} repos x ${n / m} (extrapolated)`,
    theirs: (ms * n) / m,
    note: `ours: 304 path in-process; theirs: ${n.toLocaleString('en')} git processes`,
  });
}

async function noopPublish(ctx: BenchContext, f: Fleet, n: number): Promise<void> {
  const args = ['publish', '--quiet', '--toplevel', f.origin, '--out', f.out];
  // The first publish after the fleet was generated or restored asks git about every repository
  // it has no record of (and completes indexes the generator left short); the ones after it are
  // what a nightly cron pays when nothing changed. The summary line in the note shows 0 changed.
  const settle = await bundlemirror(args, { timeoutMs: 3_600_000 });
  ctx.log(`   settling publish of ${n} repositories: ${(settle.wallMs / 1000).toFixed(1)} s`);
  const runs: number[] = [];
  const cpu: number[] = [];
  let last = settle;
  for (let i = 0; i < ctx.reps; i++) {
    last = await bundlemirror(args, { timeoutMs: 1_800_000 });
    runs.push(last.wallMs);
    if (last.self) cpu.push(last.self.cpuMs);
  }
  const m = median(runs)!;
  addRow(ctx, {
    scenario: '5 Publish',
    measure: `no-op publish of ${n.toLocaleString('en')} unchanged repos, wall`,
    unit: 'ms',
    ours: m,
    theirsLabel: '',
    theirs: null,
    target: n >= 10_000 ? '15 s' : undefined,
    met: n >= 10_000 ? m <= 15_000 : undefined,
    note: `${(m / n).toFixed(2)} ms per repo, CLI incl. start-up, CPU (user+sys) ${median(cpu)?.toFixed(0) ?? '?'} ms; first publish after generation ${(settle.wallMs / 1000).toFixed(0)} s; ${last.stdout.trim().replace(/\n/g, ' ')}`,
    samples: { ours: runs, theirs: [] },
  });
  ctx.facts.noopPublish = { n, summary: last.stdout.trim(), runs, settleMs: settle.wallMs };
}
