/**
 * Scenario 5a (and the origin every later scenario reads): a full publish of
 * the large repository with `bundlemirror publish`, against what it wraps,
 * `git bundle create --all`. The last publish becomes the served tree.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { addRow, type BenchContext } from '../lib/context.js';
import { largeRepo } from '../lib/data.js';
import { bundlemirror, CLI, gitTimed, timed } from '../lib/proc.js';
import { median } from '../lib/report.js';
import { startGitDaemon, startServe } from '../lib/servers.js';

export async function prepareLarge(ctx: BenchContext): Promise<void> {
  const t = Date.now();
  const spec = ctx.sizes.large;
  ctx.large = await largeRepo(join(ctx.cache, `large-${spec.seed}.git`), spec);
  ctx.log(
    `large repository: ${(ctx.large.packBytes / 2 ** 20).toFixed(1)} MiB packed, ${spec.commits} commits, ${Math.floor(spec.commits / spec.tagEvery)} tags (${ctx.large.reused ? 'cached' : `generated in ${((Date.now() - t) / 1000).toFixed(1)} s`})`,
  );
}

export async function publishLarge(ctx: BenchContext): Promise<void> {
  const large = ctx.large!;
  const toplevel = join(ctx.work, 'origin');
  const bigPath = '/pub/big.git';
  const bigDir = join(toplevel, 'pub', 'big.git');
  await mkdir(join(toplevel, 'pub'), { recursive: true });
  // a hard-linked copy: pushes in later scenarios must not touch the cached original
  execFileSync('cp', ['-al', large.dir, bigDir]);
  const ours: number[] = [];
  const theirs: number[] = [];
  const oursCpu: number[] = [];
  let out = '';
  for (let i = 0; i < ctx.reps; i++) {
    out = join(ctx.work, `published-${i}`);
    const raw = join(ctx.work, `raw-${i}.bundle`);
    // alternate who goes first: page cache and writeback favour neither
    const runOurs = async () => {
      const r = await bundlemirror(['publish', '--toplevel', toplevel, '--out', out, '--quiet'], {
        timeoutMs: 900_000,
      });
      ours.push(r.wallMs);
      oursCpu.push(r.cpuMs);
    };
    const runTheirs = async () => {
      const r = await gitTimed(['--git-dir', bigDir, 'bundle', 'create', '--quiet', raw, '--all'], {
        timeoutMs: 900_000,
      });
      theirs.push(r.wallMs);
    };
    if (i % 2 === 0) {
      await runOurs();
      await runTheirs();
    } else {
      await runTheirs();
      await runOurs();
    }
    await rm(raw, { force: true });
    if (i < ctx.reps - 1) await rm(out, { recursive: true, force: true });
  }
  const m = median(ours)!;
  const g = median(theirs)!;
  addRow(ctx, {
    scenario: '5 Publish',
    measure: `full publish of the large repository, wall`,
    unit: 'ms',
    ours: m,
    theirsLabel: '`git bundle create --all`',
    theirs: g,
    target: 'overhead < 5%',
    met: m / g < 1.05,
    note: 'CLI incl. start-up',
    samples: { ours, theirs },
  });
  ctx.facts.publishCpuMs = median(oursCpu);

  const serve = await startServe(out, toplevel);
  const daemon = await startGitDaemon(toplevel);
  ctx.origin = { toplevel, out, bigPath, bigDir, serve, daemon };
}

/** Fixed cost of every CLI run: node + our bundled CLI, before any work. */
export async function startupCost(ctx: BenchContext): Promise<void> {
  const ours: number[] = [];
  const theirs: number[] = [];
  const node: number[] = [];
  const publishHelp: number[] = [];
  // as a user runs it (no rusage preload); bare node alternates with it, so load hits both alike
  for (let i = 0; i < Math.max(11, ctx.reps); i++) {
    ours.push((await timed(process.execPath, [CLI, '--version'], { timeoutMs: 60_000 })).wallMs);
    node.push((await timed(process.execPath, ['-e', '0'], { timeoutMs: 60_000 })).wallMs);
    publishHelp.push((await timed(process.execPath, [CLI, 'publish', '--help'], { timeoutMs: 60_000 })).wallMs);
    theirs.push((await gitTimed(['--version'], { timeoutMs: 60_000 })).wallMs);
  }
  const o = median(ours)!;
  const n = median(node)!;
  addRow(ctx, {
    scenario: '0 CLI',
    measure: 'start-up (`--version`), median wall',
    unit: 'ms',
    ours: o,
    theirsLabel: 'bare `node -e 0`',
    theirs: n,
    target: '<= 2.5x bare node',
    met: o / n <= 2.5,
    samples: { ours, theirs: node },
  });
  addRow(ctx, {
    scenario: '0 CLI',
    measure: 'start-up of a command (`publish --help`: loads the publish chunk), median wall',
    unit: 'ms',
    ours: median(publishHelp),
    theirsLabel: 'bare `node -e 0`',
    theirs: n,
    samples: { ours: publishHelp, theirs: node },
  });
  addRow(ctx, {
    scenario: '0 CLI',
    measure: 'start-up (`--version`), wall',
    unit: 'ms',
    ours: median(ours),
    theirsLabel: '`git --version`',
    theirs: median(theirs),
    note: 'paid by every command below',
    samples: { ours, theirs },
  });
}
