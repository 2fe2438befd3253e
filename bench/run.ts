/**
 * `npm run bench [-- --quick] [--only a,b] [--reps N] [--keep] [--link-repo BARE-REPO] [--link-rates 25,5]`
 *
 * Generates its own data (deterministic; cached between runs in
 * $TMPDIR/bundlemirror-bench), runs every scenario against what a user
 * would run instead, in the same run, on 127.0.0.1 only, and prints one
 * markdown table of medians and ratios (ours / theirs), also written to
 * bench/results/latest.json and latest.md.
 */
// more libuv threads: generating the 10,000-repository fleet is bound by small-file metadata operations
process.env.UV_THREADPOOL_SIZE ??= '16';

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { FULL, QUICK, type BenchContext } from './lib/context.js';
import { ROOT } from './lib/proc.js';
import { renderTable } from './lib/report.js';
import { ensureDebianPackage, stopAll } from './lib/servers.js';
import { traceGit } from './lib/trace-git.js';
import { prepareLarge, publishLarge, startupCost } from './scenarios/origin.js';
import { bootstrap } from './scenarios/bootstrap.js';
import { breakingLink } from './scenarios/breaking-link.js';
import { incremental } from './scenarios/incremental.js';
import { serving } from './scenarios/serving.js';
import { forks, forksDiverged } from './scenarios/forks.js';
import { poll } from './scenarios/poll.js';
import { hotpaths } from './scenarios/hotpaths.js';
import { link } from './scenarios/link.js';
import { s3 } from './scenarios/s3.js';

const SCENARIOS: [string, (ctx: BenchContext) => Promise<void>][] = [
  ['startup', startupCost],
  ['bootstrap', bootstrap],
  ['hotpaths', hotpaths],
  ['breaking', breakingLink],
  ['incremental', incremental],
  ['serving', serving],
  ['forks', forks],
  ['diverged', forksDiverged],
  ['poll', poll],
  ['link', link],
  ['s3', s3],
];
/** Scenarios that need the published large repository (and, for incremental, the bootstrap's replica). */
const NEEDS_ORIGIN = new Set(['bootstrap', 'hotpaths', 'breaking', 'incremental', 'serving', 's3']);

interface Args {
  quick: boolean;
  only: Set<string> | null;
  reps: number | null;
  keep: boolean;
  linkRepo?: string;
  linkRates?: number[];
}

function parseArgs(argv: string[]): Args {
  const out: Args = { quick: false, only: null, reps: null, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') out.quick = true;
    else if (a === '--keep') out.keep = true;
    else if (a === '--only') out.only = new Set((argv[++i] ?? '').split(','));
    else if (a.startsWith('--only=')) out.only = new Set(a.slice(7).split(','));
    else if (a === '--reps') out.reps = Number(argv[++i]);
    else if (a.startsWith('--reps=')) out.reps = Number(a.slice(7));
    else if (a === '--link-repo') {
      const path = argv[++i];
      if (!path) {
        process.stderr.write('bench: --link-repo takes the path of a bare repository\n');
        process.exit(2);
      }
      out.linkRepo = resolve(path);
    } else if (a === '--link-rates')
      out.linkRates = (argv[++i] ?? '').split(',').map((r) => {
        const mbps = Number(r);
        if (!(mbps > 0)) {
          process.stderr.write(`bench: --link-rates takes MB/s, e.g. 25,5\n`);
          process.exit(2);
        }
        return mbps * 1e6;
      });
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        `usage: npm run bench -- [--quick] [--only ${SCENARIOS.map((s) => s[0]).join(',')}] [--reps N] [--keep] [--link-repo BARE-REPO] [--link-rates 25,5]\n`,
      );
      process.exit(0);
    } else {
      process.stderr.write(`bench: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  return out;
}

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .trim()
      .split('\n')[0]!;
  } catch {
    return 'not installed';
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  // what the bench needs from Debian: /usr/bin/time (CPU, memory), curl (serving), nginx (serving)
  ensureDebianPackage('time', '/usr/bin/time');
  ensureDebianPackage('curl', '/usr/bin/curl');
  ensureDebianPackage('nginx', '/usr/sbin/nginx');
  traceGit();

  const cache = join(tmpdir(), 'bundlemirror-bench');
  const work = join(cache, `run-${process.pid}`);
  await mkdir(work, { recursive: true });
  const lines: string[] = [];
  const ctx: BenchContext = {
    quick: args.quick,
    reps: args.reps ?? (args.quick ? 1 : 3),
    sizes: args.quick ? QUICK : FULL,
    linkRepo: args.linkRepo,
    linkRates: args.linkRates,
    work,
    cache,
    rows: [],
    facts: {},
    log: (l) => {
      lines.push(l);
      process.stderr.write(`${l}\n`);
    },
  };
  const machine = {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    ramGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    git: version('git', ['--version']),
    nginx: spawnSync('/usr/sbin/nginx', ['-v'], { encoding: 'utf8' }).stderr?.trim() || 'not installed',
    loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
  };
  ctx.log(
    `bench: ${args.quick ? 'quick' : 'full'} run, ${ctx.reps} repetition(s); ${machine.nproc} cores, ${machine.ramGiB} GiB, ${machine.git}, node ${machine.node}; load average ${machine.loadavgAtStart.join(' ')}`,
  );

  const wanted = SCENARIOS.filter(([name]) => !args.only || args.only.has(name));
  const failures: { scenario: string; error: string }[] = [];
  try {
    if (wanted.some(([name]) => NEEDS_ORIGIN.has(name)) || !args.only || args.only.has('publish')) {
      await prepareLarge(ctx);
      ctx.log('== 5 publish (full) and the origin');
      await publishLarge(ctx);
    }
    for (const [name, run] of wanted) {
      if (name === 'incremental' && !ctx.replica) {
        ctx.log('== incremental needs bootstrap: running it first');
        await bootstrap(ctx);
      }
      ctx.log(`== ${name}`);
      const t = Date.now();
      try {
        await run(ctx);
      } catch (err) {
        const msg = (err as Error)?.stack ?? String(err);
        failures.push({ scenario: name, error: msg });
        ctx.log(`   FAILED: ${msg.slice(0, 2000)}`);
      }
      ctx.log(`   (${((Date.now() - t) / 1000).toFixed(1)} s)`);
    }
  } finally {
    await stopAll();
    if (!args.keep) await rm(work, { recursive: true, force: true });
  }

  const table = renderTable(ctx.rows);
  const elapsed = (Date.now() - started) / 1000;
  const header = `bundlemirror bench, ${args.quick ? 'quick' : 'full'} run, ${new Date().toISOString().slice(0, 16)}Z, ${elapsed.toFixed(0)} s; ${machine.nproc} cores, ${machine.ramGiB} GiB RAM, ${machine.git}, node ${machine.node}; load average at start ${machine.loadavgAtStart.join(' ')}, at end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`;
  process.stdout.write(`\n${header}\n\n${table}\n`);
  if (failures.length)
    process.stdout.write(
      `\nFailed scenarios: ${failures.map((f) => f.scenario).join(', ')} (details in bench/results/latest.json)\n`,
    );
  const results = join(ROOT, 'bench', 'results');
  await mkdir(results, { recursive: true });
  const json = {
    mode: args.quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    elapsedSeconds: elapsed,
    reps: ctx.reps,
    machine: { ...machine, loadavgAtEnd: loadavg() },
    sizes: ctx.sizes,
    rows: ctx.rows,
    failures,
    facts: ctx.facts,
    log: lines,
  };
  await writeFile(join(results, 'latest.json'), JSON.stringify(json, null, 1) + '\n');
  await writeFile(join(results, 'latest.md'), `${header}\n\n${table}\n`);
  return failures.length ? 1 : 0;
}

// a crash must not leave servers behind: they are children of this process only
process.on('uncaughtException', (err) => {
  process.stderr.write(`bench: ${err?.stack ?? String(err)}\n`);
  void stopAll().finally(() => process.exit(1));
});

main().then(
  (code) => process.exit(code),
  async (err) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);
