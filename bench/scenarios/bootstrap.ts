/**
 * Scenario 1: bootstrap the large repository on an empty replica.
 * Ours: `bundlemirror pull` from `serve`. Theirs: `git clone --mirror` from
 * `git daemon` (git://) and from smart HTTP (`git http-backend` behind
 * serve's /git/). Wall, CPU and peak memory of the client process tree.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { addRow, writeReplicaConfig, type BenchContext } from '../lib/context.js';
import { bundlemirror, gitTimed, type Timed } from '../lib/proc.js';
import { median } from '../lib/report.js';

export async function bootstrap(ctx: BenchContext): Promise<void> {
  const o = ctx.origin!;
  const runs: Record<'ours' | 'daemon' | 'http', Timed[]> = { ours: [], daemon: [], http: [] };
  let keep = { toplevel: '', daemon: '', http: '' };
  for (let i = 0; i < ctx.reps; i++) {
    const toplevel = join(ctx.work, `replica-${i}`);
    const conf = await writeReplicaConfig(join(ctx.work, `replica-${i}.conf`), toplevel, o.serve.url);
    const daemonDir = join(ctx.work, `mirror-daemon-${i}.git`);
    const httpDir = join(ctx.work, `mirror-http-${i}.git`);
    const steps: [keyof typeof runs, () => Promise<Timed>][] = [
      ['ours', () => bundlemirror(['pull', '-c', conf, '--no-progress', '-q'], { timeoutMs: 900_000 })],
      [
        'daemon',
        () =>
          gitTimed(['clone', '--quiet', '--mirror', `${o.daemon.url}${o.bigPath}`, daemonDir], { timeoutMs: 900_000 }),
      ],
      [
        'http',
        () =>
          gitTimed(['clone', '--quiet', '--mirror', `${o.serve.url}/git${o.bigPath}`, httpDir], { timeoutMs: 900_000 }),
      ],
    ];
    // rotate the order each repetition
    for (let k = 0; k < steps.length; k++) {
      const [name, run] = steps[(k + i) % steps.length]!;
      runs[name].push(await run());
    }
    if (i > 0) {
      await rm(keep.toplevel, { recursive: true, force: true });
      await rm(keep.daemon, { recursive: true, force: true });
      await rm(keep.http, { recursive: true, force: true });
    }
    keep = { toplevel, daemon: daemonDir, http: httpDir };
  }
  ctx.replica = { toplevel: keep.toplevel };
  ctx.mirrors = { daemon: keep.daemon, http: keep.http };

  const m = (xs: Timed[], f: (t: Timed) => number) => median(xs.map(f));
  const wall = (t: Timed) => t.wallMs;
  const ours = m(runs.ours, wall)!;
  const daemon = m(runs.daemon, wall)!;
  const http = m(runs.http, wall)!;
  const size = `${(ctx.large!.packBytes / 2 ** 20).toFixed(0)} MiB`;
  addRow(ctx, {
    scenario: '1 Bootstrap',
    measure: `${size} repository, wall`,
    unit: 'ms',
    ours,
    theirsLabel: '`git clone --mirror` git://',
    theirs: daemon,
    target: 'within 10%',
    met: ours / daemon <= 1.1,
    note: 'CLI incl. start-up',
    samples: { ours: runs.ours.map(wall), theirs: runs.daemon.map(wall) },
  });
  addRow(ctx, {
    scenario: '1 Bootstrap',
    measure: `${size} repository, wall`,
    unit: 'ms',
    ours,
    theirsLabel: '`git clone --mirror` smart HTTP',
    theirs: http,
    target: 'within 10%',
    met: ours / http <= 1.1,
    samples: { ours: runs.ours.map(wall), theirs: runs.http.map(wall) },
  });
  addRow(ctx, {
    scenario: '1 Bootstrap',
    measure: 'CPU time, client process tree',
    unit: 'ms',
    ours: m(runs.ours, (t) => t.cpuMs),
    theirsLabel: '`git clone --mirror` git://',
    theirs: m(runs.daemon, (t) => t.cpuMs),
    note: 'incl. git index-pack',
  });
  addRow(ctx, {
    scenario: '1 Bootstrap',
    measure: 'peak RSS, largest process of the tree',
    unit: 'bytes',
    ours: m(runs.ours, (t) => t.maxRssBytes),
    theirsLabel: '`git clone --mirror` git://',
    theirs: m(runs.daemon, (t) => t.maxRssBytes),
    note: 'git maps packs, which counts',
  });
  addRow(ctx, {
    scenario: '1 Bootstrap',
    measure: 'peak RSS of the bundlemirror node process alone',
    unit: 'bytes',
    ours: m(runs.ours, (t) => t.self?.maxRssBytes ?? NaN),
    theirsLabel: '',
    theirs: null,
  });
}
