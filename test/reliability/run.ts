/**
 * `npm run reliability`: the randomized, heavier version of the reliability
 * tests. Seeded trials, in turn, against one origin and one replica on
 * 127.0.0.1:
 *
 *   network   pull through a link that cuts at random offsets (FIN or RST),
 *             stalls, crawls, resets during the headers, or goes away and
 *             comes back; runs are repeated as cron would until they pass
 *   pull -9   pull killed (whole process group) during a download, an
 *             unbundle, a ref transaction, a state write or at a random
 *             moment; then the next run must complete
 *   publish   publish killed while git writes a bundle or at a random
 *             moment; the tree must stay consistent and the next publish
 *             and pull complete
 *
 *   hostile client   serve and the daemon's listener, once each
 *             (test/support/server-attacks.ts): a repository publish left
 *             out, serve --bundles over repositories, a force-pushed commit
 *             by id, 100 half-sent POSTs, 200 wrong notify tokens
 *   hostile origin   the replica, once each (test/support/attacks.ts):
 *             manifest symlinks that climb out of the toplevel or into a repository
 *             (over HTTP and in a kit), redirects off the published tree, an
 *             entry nested 200,000 deep, control and bidi characters; each
 *             must be refused with nothing outside the toplevel changed, no
 *             hook run and the other repositories synced
 *
 * After every trial each repository is compared with the origin (refs and
 * git fsck). A trial "loses data" when a repository ends neither at its old
 * refs nor at the origin's, fails fsck, is not verified once the faults
 * stop, or when debris or an oversized partial is left behind. Prints one
 * line per trial and a table of figures; exits 1 if anything was lost.
 *
 *   npm run reliability                  # about 3 minutes
 *   npm run reliability -- --quick       # about 30 seconds
 *   npm run reliability -- --seed 7      # another sequence (default 1)
 *   npm run reliability -- --minutes 10  # a longer budget (trial counts grow with it)
 *   npm run reliability -- --keep-failed # stop at the first failed trial and keep its files
 */
import { parseArgs } from 'node:util';
import { publishRunMs, startLab, type Lab } from '../support/lab.js';
import { crashTrial, networkTrial, publishCrashTrial, type KillPoint } from '../support/trials.js';
import { runServerAttacks } from '../support/server-attacks.js';
import { runAttacks, type AttackResult } from '../support/attacks.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    minutes: { type: 'string' },
    'keep-failed': { type: 'boolean', default: false },
  },
});
const quick = values.quick === true;
const seed0 = Number(values.seed);
const budgetMs = (values.minutes ? Number(values.minutes) : quick ? 0.5 : 3) * 60_000;
if (!Number.isFinite(seed0) || !Number.isFinite(budgetMs) || budgetMs <= 0) {
  process.stderr.write('usage: run.ts [--quick] [--seed N] [--minutes M]\n');
  process.exit(2);
}
const scale = budgetMs / (3 * 60_000);
const limits = quick
  ? { network: 2, crash: 2, publish: 1 }
  : {
      network: Math.max(1, Math.round(24 * scale)),
      crash: Math.max(1, Math.round(20 * scale)),
      publish: Math.max(1, Math.round(10 * scale)),
    };

interface Row {
  trials: number;
  faults: number;
  recoveries: number;
  verified: number;
  lost: number;
}
const rows: Record<'network' | 'crash' | 'publish', Row> = {
  network: { trials: 0, faults: 0, recoveries: 0, verified: 0, lost: 0 },
  crash: { trials: 0, faults: 0, recoveries: 0, verified: 0, lost: 0 },
  publish: { trials: 0, faults: 0, recoveries: 0, verified: 0, lost: 0 },
};
const failures: string[] = [];
const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s`;
const line = (s: string): void => void process.stdout.write(`${s}\n`);

line(
  `bundlemirror reliability run: seed ${seed0}, budget ${Math.round(budgetMs / 1000)} s, at most ${limits.network} network, ${limits.crash} pull -9 and ${limits.publish} publish -9 trials`,
);
// a hostile client of serve and of the daemon's listener: not seeded, each attack is the same every time
const serverAttacks = await runServerAttacks({
  quick,
  onResult: (r) =>
    line(
      `${elapsed()}  attack   ${r.name.padEnd(34)} ${String(r.refused.length).padStart(3)} refused  ${r.problems.length ? `GOT THROUGH: ${r.problems.join('; ')}` : 'held'}`,
    ),
});
for (const r of serverAttacks)
  if (r.problems.length) failures.push(`attack ${r.name}:\n    ${r.problems.join('\n    ')}`);
const serverHeld = serverAttacks.filter((r) => r.problems.length === 0).length;
line(
  `hostile client: ${serverAttacks.length} attacks, ${serverAttacks.reduce((n, r) => n + r.refused.length, 0)} refusals, ${serverHeld} held, ${serverAttacks.length - serverHeld} got through`,
);
line('');
const lab: Lab = await startLab({ bigBytes: 600_000 });
try {
  const runStarted = Date.now();
  const first = await lab.pull();
  if (first.code !== 0) throw new Error(`the first pull failed: ${first.stderr}`);
  // a pull that clones everything: kills "at a random moment" are drawn within this
  const runMs = Math.max(1500, Date.now() - runStarted);
  const publishMs = await publishRunMs(lab);

  const points: KillPoint[] = ['download', 'unbundle', 'update-ref', 'state-write', 'anywhere'];
  // interleaved, so a short budget still sees every kind of fault
  const plan: ('network' | 'crash' | 'publish')[] = [];
  for (let i = 0; i < Math.max(limits.network, limits.crash, limits.publish * 2); i += 1) {
    if (i < limits.network) plan.push('network');
    if (i < limits.crash) plan.push('crash');
    if (i % 2 === 0 && i / 2 < limits.publish) plan.push('publish');
  }

  for (const [i, kind] of plan.entries()) {
    if (Date.now() - started > budgetMs && rows.network.trials && rows.crash.trials && rows.publish.trials) break;
    const seed = seed0 * 1000 + i;
    const row = rows[kind];
    row.trials += 1;
    let problems: string[];
    if (kind === 'network') {
      const r = await networkTrial(lab, seed);
      row.faults += r.faults;
      row.verified += r.verified;
      if (r.recovered) row.recoveries += 1;
      problems = r.problems;
      line(
        `${elapsed()}  network  seed ${seed}  ${r.fault.padEnd(13)} ${String(r.faults).padStart(3)} faults, ${r.runs} run(s)  ${problems.length ? 'LOST' : 'verified'}`,
      );
    } else if (kind === 'crash') {
      const point = points[rows.crash.trials % points.length]!;
      const r = await crashTrial(lab, seed, point, { fresh: point === 'download' && seed % 3 === 0, runMs });
      row.faults += r.landed === 'finished first' ? 0 : 1;
      row.verified += r.verified;
      if (r.recovered) row.recoveries += 1;
      problems = r.problems;
      line(
        `${elapsed()}  pull -9  seed ${seed}  killed ${r.landed.padEnd(22)} ${problems.length ? 'LOST' : 'recovered, verified'}`,
      );
    } else {
      const r = await publishCrashTrial(lab, seed, { runMs: publishMs });
      row.faults += r.landed === 'finished first' ? 0 : 1;
      row.verified += r.problems.length ? 0 : 3;
      if (r.recovered) row.recoveries += 1;
      problems = r.problems;
      line(
        `${elapsed()}  publish  seed ${seed}  killed ${r.landed.padEnd(22)} next publish ${r.recoveryMs} ms  ${problems.length ? 'LOST' : 'consistent, verified'}`,
      );
    }
    if (problems.length) {
      row.lost += 1;
      failures.push(`${kind} seed ${seed}:\n    ${problems.join('\n    ')}`);
      if (values['keep-failed']) break;
    }
  }
} finally {
  const keep = values['keep-failed'] === true && failures.length > 0;
  await lab.close({ keep });
  if (keep) line(`kept for inspection: ${lab.dir} (origin/, published/, replica/, pull.log)`);
}

// a hostile origin: not seeded, each attack is the same every time
line('');
const attacks: AttackResult[] = await runAttacks({
  quick,
  onResult: (r) =>
    line(
      `${elapsed()}  attack   ${r.name.padEnd(34)} ${String(r.refused.length).padStart(3)} refused  ${r.problems.length ? `GOT THROUGH: ${r.problems.join('; ')}` : 'held'}`,
    ),
});
for (const r of attacks) if (r.problems.length) failures.push(`attack ${r.name}:\n    ${r.problems.join('\n    ')}`);

const total: Row = { trials: 0, faults: 0, recoveries: 0, verified: 0, lost: 0 };
for (const r of Object.values(rows)) for (const k of Object.keys(total) as (keyof Row)[]) total[k] += r[k];
const header = ['', 'trials', 'faults injected', 'recoveries', 'repositories verified', 'data lost'];
const table: string[][] = [
  ['network faults', ...fmt(rows.network)],
  ['pull killed -9', ...fmt(rows.crash)],
  ['publish killed -9', ...fmt(rows.publish)],
  ['total', ...fmt(total)],
];
function fmt(r: Row): string[] {
  return [r.trials, r.faults, r.recoveries, r.verified, r.lost].map(String);
}
const widths = header.map((h, c) => Math.max(h.length, ...table.map((row) => row[c]!.length)));
const render = (cells: string[]): string =>
  cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
line('');
line(render(header));
line(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of table) line(render(row));
line('');
const held = attacks.filter((r) => r.problems.length === 0).length;
const refusals = attacks.reduce((n, r) => n + r.refused.length, 0);
line(
  `hostile origin: ${attacks.length} attacks, ${refusals} refusals, ${held} held, ${attacks.length - held} got through`,
);
line('');
line(`${((Date.now() - started) / 1000).toFixed(0)} s in all; every trial replays with its seed.`);
if (failures.length) {
  line('');
  line('FAILED TRIALS');
  for (const f of failures) line(`  ${f}`);
  process.exitCode = 1;
} else {
  line(
    'Data lost: 0. Every repository ended equal to the origin, git fsck clean, nothing left behind; every attack was refused.',
  );
}
