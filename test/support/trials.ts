/**
 * Fault trials in a Lab (lab.ts), shared by the reliability tests and the
 * randomized runner (test/reliability/run.ts): pull killed with -9 at a
 * chosen point, publish killed with -9, pull through a broken link. Each
 * returns the problems it found (empty: nothing lost) and its figures.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FaultOptions } from '../../src/faults/fault-proxy.js';
import { runCli } from './cli.js';
import { advanceOrigin, checkPublishedTree, LAB_PATHS, pick, publishDebris, rng, type Lab } from './lab.js';
import {
  checkStores,
  FAST_ENV,
  leftovers,
  oversizedPartials,
  publishedBundles,
  refsOrNull,
  startCli,
  verifyMirror,
  waitUntil,
  type Phase,
} from './reliability.js';

export type KillPoint = 'download' | Phase | 'state-write' | 'anywhere';

export interface CrashTrial {
  seed: number;
  point: KillPoint;
  change: string;
  /** Where the kill landed: the phase reached, or 'finished first'. */
  landed: string;
  /** Problems found; empty when nothing was lost. */
  problems: string[];
  /** The run after the kill completed with exit 0 and every repository verified. */
  recovered: boolean;
  verified: number;
  /** Bytes the recovery run took from partial downloads left by the killed one. */
  resumedBytes: number;
}

/**
 * One crash trial: change the origin, start `pull`, kill -9 its whole
 * process group at `point`, check that every repository is at its old refs
 * or the origin's (never in between, fsck clean), then pull again and check
 * that the replica equals the origin, with no debris and no oversized
 * partial left.
 */
export async function crashTrial(
  lab: Lab,
  seed: number,
  point: KillPoint,
  opts: { fresh?: boolean; runMs?: number } = {},
): Promise<CrashTrial> {
  const random = rng(seed);
  if (opts.fresh) {
    await rm(lab.replicaTop, { recursive: true, force: true });
    await mkdir(lab.replicaTop);
  }
  const before: Record<string, string | null> = {};
  for (const p of LAB_PATHS) before[p] = await refsOrNull(lab.replicaTop, p);
  // a kill during a download needs something big to download, slowly enough to land inside it
  const change = await advanceOrigin(lab, random, { big: point === 'download' });
  if (point === 'download') lab.proxy.configure({ bytesPerSecond: 2_000_000 });
  const after: Record<string, string | null> = {};
  for (const p of LAB_PATHS) after[p] = await refsOrNull(lab.originTop, p);

  await lab.shim.reset();
  const phase = point === 'download' || point === 'anywhere' || point === 'state-write' ? null : point;
  const child = startCli(['pull', '-c', lab.config, '--no-progress'], {
    env: { ...FAST_ENV, ...lab.shim.env(phase ? { [phase]: Math.floor(random() * 150) } : {}) },
  });
  let landed = 'finished first';
  if (point === 'download') {
    const fraction = 0.1 + random() * 0.8;
    const hit = await waitUntil(async () => {
      for (const name of await readdir(join(lab.replicaTop, '.bundlemirror', 'partial')).catch(() => [] as string[])) {
        const m = /^([0-9a-f]{64})\.part$/.exec(name);
        const want = m ? lab.known.get(m[1]!) : undefined;
        if (!want || want.size < 100_000) continue; // a kill inside a big download, not a tiny one
        const size = await stat(join(lab.replicaTop, '.bundlemirror', 'partial', name)).then(
          (s) => s.size,
          () => 0,
        );
        if (size >= want.size * fraction) return true;
      }
      return false;
    }, child.exited);
    if (hit) landed = `download at ${Math.round(fraction * 100)}%`;
  } else if (point === 'state-write') {
    // the state lock (proper-lockfile's directory) is held for the read-modify-write of state.json
    const state = join(lab.replicaTop, '.bundlemirror');
    const writing = async (): Promise<boolean> =>
      (await readdir(state).catch(() => [] as string[])).some(
        (n) => n === 'state.json.lock' || n.startsWith('.bm-tmp-state.json'),
      );
    const hit = await waitUntil(writing, child.exited);
    if (hit) landed = 'state write';
  } else if (phase) {
    if (await lab.shim.started(phase, child.exited)) {
      const delay = Math.floor(random() * 250);
      await new Promise((r) => setTimeout(r, delay));
      landed = `${phase} +${delay} ms`;
    }
  } else {
    const delay = Math.floor((0.2 + 0.7 * random()) * (opts.runMs ?? 4000));
    const early = await Promise.race([
      new Promise((r) => setTimeout(() => r(false), delay)),
      child.exited.then(() => true),
    ]);
    if (!early) landed = `${delay} ms after start`;
  }
  child.killGroup();
  await child.exited;
  if (point === 'download') lab.proxy.configure({});

  const problems: string[] = [];
  for (const p of LAB_PATHS) {
    const now = await refsOrNull(lab.replicaTop, p);
    if (now !== before[p] && now !== after[p])
      problems.push(`${p}: after the kill its refs are neither the old ones nor the origin's`);
  }
  const present = [];
  for (const p of LAB_PATHS) if ((await refsOrNull(lab.replicaTop, p)) !== null) present.push(p);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, present)) {
    if (!c.ok && !c.why.startsWith('refs differ')) problems.push(`${c.path}: after the kill: ${c.why}`);
  }
  problems.push(...(await oversizedPartials(lab.replicaTop, lab.known)));

  const again = await lab.pull();
  const recovered = again.code === 0;
  if (!recovered)
    problems.push(
      `the run after the kill exited ${again.code}: ${again.stderr.trim().split('\n').slice(0, 4).join(' / ')}`,
    );
  const checks = await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS);
  for (const c of checks) if (!c.ok) problems.push(`${c.path}: after recovery: ${c.why}`);
  problems.push(...(await checkStores(lab.replicaTop)));
  const debris = await leftovers(lab.replicaTop);
  if (recovered && debris.length) problems.push(`left behind after a successful run: ${debris.join(', ')}`);
  const saved = /saved ([0-9.]+) (B|KiB|MiB)/.exec(again.stdout);
  const resumedBytes = saved ? Number(saved[1]) * { B: 1, KiB: 1024, MiB: 1024 * 1024 }[saved[2] as 'B'] : 0;
  return {
    seed,
    point,
    change,
    landed,
    problems,
    recovered,
    verified: checks.filter((c) => c.ok).length,
    resumedBytes,
  };
}

export interface PublishCrashTrial {
  seed: number;
  landed: string;
  problems: string[];
  /** The publish after the kill completed (exit 0) and a replica then verified every repository. */
  recovered: boolean;
  /** Milliseconds the publish after the kill took (it must not wait for the dead one's lock). */
  recoveryMs: number;
}

/**
 * One publish crash trial: change the origin, start `publish`, kill -9 it
 * (while git writes a bundle, or at a random moment), check that the
 * published tree is consistent as it stands, publish again, check again
 * (and that no temp files remain), and pull: the replica must verify.
 */
export async function publishCrashTrial(
  lab: Lab,
  seed: number,
  opts: { runMs?: number } = {},
): Promise<PublishCrashTrial> {
  const random = rng(seed);
  await advanceOrigin(lab, random, { publish: false });
  await lab.shim.reset();
  const inBundle = random() < 0.5;
  const child = startCli(['publish', '--toplevel', lab.originTop, '--out', lab.out, '--quiet'], {
    env: lab.shim.env(inBundle ? { 'bundle-create': Math.floor(random() * 100) } : {}),
  });
  let landed = 'finished first';
  if (inBundle) {
    if (await lab.shim.started('bundle-create', child.exited)) {
      const delay = Math.floor(random() * 200);
      await new Promise((r) => setTimeout(r, delay));
      landed = `bundle create +${delay} ms`;
    }
  } else {
    const delay = Math.floor((0.3 + 0.7 * random()) * (opts.runMs ?? 3000));
    const early = await Promise.race([
      new Promise((r) => setTimeout(() => r(false), delay)),
      child.exited.then(() => true),
    ]);
    if (!early) landed = `${delay} ms after start`;
  }
  child.killGroup();
  await child.exited;
  const problems = (await checkPublishedTree(lab.out)).map((p) => `after the kill: ${p}`);

  const started = Date.now();
  const again = await runCli(['publish', '--toplevel', lab.originTop, '--out', lab.out, '--quiet']);
  const recoveryMs = Date.now() - started;
  for (const [k, v] of await publishedBundles(lab.out)) lab.known.set(k, v);
  if (again.code !== 0)
    problems.push(`the publish after the kill exited ${again.code}: ${again.stderr.trim().split('\n')[0]}`);
  problems.push(...(await checkPublishedTree(lab.out)).map((p) => `after the next publish: ${p}`));
  problems.push(...(await publishDebris(lab.out)).map((p) => `left behind by the killed publish: ${p}`));
  const pulled = await lab.pull();
  if (pulled.code !== 0)
    problems.push(`pull after the publishes exited ${pulled.code}: ${pulled.stderr.trim().split('\n')[0]}`);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS))
    if (!c.ok) problems.push(`${c.path}: ${c.why}`);
  problems.push(...(await checkStores(lab.replicaTop)));
  return { seed, landed, problems, recovered: again.code === 0 && pulled.code === 0, recoveryMs };
}

export type LinkFault = 'cuts' | 'stalls' | 'slow' | 'header-resets' | 'restart';
export const LINK_FAULTS: readonly LinkFault[] = ['cuts', 'stalls', 'slow', 'header-resets', 'restart'];

export interface NetworkTrial {
  seed: number;
  fault: LinkFault;
  change: string;
  /** Pull runs until every repository verified (a run that fails cleanly is retried, as cron would). */
  runs: number;
  /** Cuts, stalls, refusals and restarts the link inflicted. */
  faults: number;
  problems: string[];
  recovered: boolean;
  verified: number;
}

/**
 * One network trial: change the origin, break the link in a seeded way,
 * pull until the run succeeds (at most three runs on the faulty link, then
 * one on a healed link), and check every run failed cleanly if it failed,
 * no partial outgrew its bundle, and the replica ends equal to the origin.
 */
export async function networkTrial(lab: Lab, seed: number, fault?: LinkFault): Promise<NetworkTrial> {
  const random = rng(seed);
  const kind = fault ?? pick(random, LINK_FAULTS);
  if (random() < 0.25) {
    await rm(lab.replicaTop, { recursive: true, force: true });
    await mkdir(lab.replicaTop);
  }
  const change = await advanceOrigin(lab, random);
  const count = (): number => lab.proxy.stats.cuts + lab.proxy.stats.stalls + lab.proxy.stats.refused;
  const before = count();
  let restarts = 0;
  const faults: FaultOptions =
    kind === 'cuts'
      ? { cutAfterBytes: { min: 1, max: 100_000, seed }, cutStyle: random() < 0.5 ? 'close' : 'reset' }
      : kind === 'stalls'
        ? { stallAfterBytes: Math.floor(random() * 1500), faultyConnections: 1 + Math.floor(random() * 4) }
        : kind === 'slow'
          ? { bytesPerSecond: (256 + Math.floor(random() * 768)) * 1024 }
          : kind === 'header-resets'
            ? {
                cutAfterBytes: { min: 1, max: 150, seed },
                cutStyle: 'reset',
                faultyConnections: 1 + Math.floor(random() * 3),
              }
            : { bytesPerSecond: 2_000_000 };
  lab.proxy.configure(faults);
  const problems: string[] = [];
  let runs = 0;
  let ok = false;
  for (; runs < 4 && !ok;) {
    if (runs === 3) lab.proxy.configure({}); // the link heals
    runs += 1;
    const running = lab.pull();
    if (kind === 'restart' && runs === 1) {
      await new Promise((r) => setTimeout(r, 1500 + Math.floor(random() * 1500)));
      await lab.restartLink(300 + Math.floor(random() * 1200));
      lab.proxy.configure(faults);
      restarts += 1;
    }
    const r = await running;
    ok = r.code === 0;
    if (!ok) {
      if (r.code !== 1)
        problems.push(`run ${runs} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
      else if (!/\[E_[A-Z_]+\]/.test(r.stderr))
        problems.push(`run ${runs} failed without saying what failed: ${r.stderr.trim().slice(0, 200)}`);
    }
    problems.push(...(await oversizedPartials(lab.replicaTop, lab.known)));
  }
  lab.proxy.configure({});
  if (!ok) problems.push(`still failing after ${runs} runs`);
  const checks = await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS);
  for (const c of checks) if (!c.ok) problems.push(`${c.path}: ${c.why}`);
  problems.push(...(await checkStores(lab.replicaTop)));
  if (ok) {
    const debris = await leftovers(lab.replicaTop);
    if (debris.length) problems.push(`left behind after a successful run: ${debris.join(', ')}`);
  }
  return {
    seed,
    fault: kind,
    change,
    runs,
    faults: count() - before + restarts + (kind === 'slow' ? 1 : 0),
    problems,
    recovered: ok && checks.every((c) => c.ok),
    verified: checks.filter((c) => c.ok).length,
  };
}
