/**
 * A small world for fault trials, shared by the reliability tests and the
 * randomized runner (test/reliability/run.ts): an origin of bare
 * repositories (one with several MB of incompressible history, a fork of
 * it, a small one), published and served on 127.0.0.1 behind a fault proxy,
 * and a replica configured to pull through that proxy; plus the ways the
 * origin changes between trials and what a consistent published tree is.
 * Everything random is seeded: a failing trial replays from its seed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { git } from '../../src/git/exec.js';
import { startFaultProxy, type FaultProxy, type FaultProxyStats } from '../../src/faults/fault-proxy.js';
import { seededRandom } from '../../src/faults/random.js';
import { parseManifest, type Manifest } from '../../src/manifest/manifest.js';
import { parseRepoIndex, type RepoIndex } from '../../src/manifest/repo-index.js';
import { publish as publishTree } from '../../src/origin/publish.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { runCli, type CliResult } from './cli.js';
import { writeConfig } from './mirror.js';
import { FAST_ENV, gitShim, publishedBundles, type GitShim } from './reliability.js';
import { KEPT_MARK, makeFork, makeRepo, tempDir, type WorkTree } from './repos.js';

export const LAB_PATHS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

export interface Lab {
  dir: string;
  originTop: string;
  out: string;
  server: RunningServer;
  /** Between the replica and the origin: every byte of the pull crosses it. */
  readonly proxy: FaultProxy;
  /**
   * Takes the link down (open connections die, new ones are refused) for
   * `downMs`, or until `down` settles, then brings it back on the same port.
   */
  restartLink(down: number | (() => Promise<unknown>)): Promise<void>;
  replicaTop: string;
  config: string;
  shim: GitShim;
  worktrees: Record<string, WorkTree>;
  /** Every bundle the origin ever listed (partials are checked against these sizes). */
  known: Map<string, { size: number; repo: string }>;
  publish(): Promise<CliResult>;
  pull(args?: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Stops the servers and removes everything, unless `keep` (to inspect a failed trial). */
  close(opts?: { keep?: boolean }): Promise<void>;
}

export async function startLab(opts: { bigBytes?: number; bytesPerSecond?: number } = {}): Promise<Lab> {
  const { dir, cleanup } = await tempDir('bm-reliability-');
  const originTop = join(dir, 'origin');
  const out = join(dir, 'published');
  const alpha = await makeRepo(dir, originTop, 'pub/alpha.git', {
    commits: 3,
    bytesPerCommit: opts.bigBytes ?? 900_000,
    description: 'Alpha',
  });
  const beta = await makeRepo(dir, originTop, 'pub/sub/beta.git', { commits: 2 });
  const fork = await makeFork(dir, originTop, alpha.bare, 'pub/forks/alpha-fork.git');
  const known = new Map<string, { size: number; repo: string }>();
  // in-process (a CLI start costs seconds); the publish crash trials run the real CLI
  const publish = async (): Promise<CliResult> => {
    let r: CliResult;
    try {
      const report = await publishTree({ toplevel: originTop, out, lockWaitMs: 60_000 });
      r = { code: report.failed.length ? 1 : 0, stdout: '', stderr: report.failed.map((e) => e.describe()).join('\n') };
    } catch (err) {
      r = { code: 2, stdout: '', stderr: String(err) };
    }
    for (const [k, v] of await publishedBundles(out)) known.set(k, v);
    return r;
  };
  const first = await publish();
  if (first.code !== 0) throw new Error(`publish failed: ${first.stderr}`);
  const server = await startServer({ bundles: out, toplevel: originTop, host: '127.0.0.1', port: 0, log: false });
  let proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: server.port },
    bytesPerSecond: opts.bytesPerSecond,
  });
  const port = proxy.port;
  const replicaTop = join(dir, 'replica');
  const config = await writeConfig(dir, {
    toplevel: replicaTop,
    manifest: proxy.url('/manifest.js.gz'),
    site: proxy.url('/git'),
  });
  const shim = await gitShim(dir);
  return {
    dir,
    originTop,
    out,
    server,
    get proxy() {
      return proxy;
    },
    async restartLink(down) {
      const stats = { ...proxy.stats };
      await proxy.close();
      if (typeof down === 'number') await new Promise((r) => setTimeout(r, down));
      else await down().catch(() => undefined);
      proxy = await startFaultProxy({
        upstream: { host: '127.0.0.1', port: server.port },
        bytesPerSecond: opts.bytesPerSecond,
        port,
      });
      // the counters go on where the old link's stopped
      Object.assign(proxy.stats as FaultProxyStats, {
        bytesDownstream: stats.bytesDownstream,
        bytesUpstream: stats.bytesUpstream,
        cuts: stats.cuts,
        stalls: stats.stalls,
        refused: stats.refused,
        connections: stats.connections,
      });
    },
    replicaTop,
    config,
    shim,
    worktrees: { '/pub/alpha.git': alpha.wt, '/pub/sub/beta.git': beta.wt, '/pub/forks/alpha-fork.git': fork.wt },
    known,
    publish,
    pull: (args = [], env = {}) =>
      runCli(['pull', '-c', config, '--no-progress', ...args], { env: { ...FAST_ENV, ...env } }),
    async close({ keep = false } = {}) {
      await proxy.close();
      await server.close({ graceMs: 100 });
      if (keep) await writeFile(join(dir, KEPT_MARK), '');
      else await cleanup();
    },
  };
}

/** The project's one seeded PRNG, under the name the trials use. */
export const rng = seededRandom;

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/**
 * Changes the origin the way its users do (new commits, some of them
 * large; a force-push; a new tag; a branch deleted or created), then
 * publishes. Returns what it did, for trial logs.
 */
export async function advanceOrigin(
  lab: Lab,
  random: () => number,
  opts: { publish?: boolean; big?: boolean } = {},
): Promise<string> {
  const done: string[] = [];
  const path = pick(random, LAB_PATHS);
  const wt = lab.worktrees[path]!;
  const bytes = opts.big || random() < 0.6 ? 200_000 + Math.floor(random() * 600_000) : 0;
  await wt.commit(`trial change`, bytes);
  await wt.push('main');
  done.push(`${path}: commit${bytes ? ` of ${bytes} B` : ''}`);
  const extra = random();
  const other = lab.worktrees[pick(random, LAB_PATHS)]!;
  if (extra < 0.25) {
    await other.run(['reset', '--hard', 'HEAD~1']);
    await other.commit('rewritten');
    await other.push('+main');
    done.push('force-push');
  } else if (extra < 0.5) {
    const tag = `t${randomBytes(3).toString('hex')}`;
    await other.run(['tag', '-a', '-m', tag, tag]);
    await other.push(tag);
    done.push(`tag ${tag}`);
  } else if (extra < 0.7) {
    const branch = `b${randomBytes(3).toString('hex')}`;
    await other.run(['push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`]);
    done.push(`branch ${branch}`);
  } else if (extra < 0.85) {
    const r = await git(['for-each-ref', '--format=%(refname)', 'refs/heads/b*'], { gitDir: other.bare });
    const victim = r.stdout.toString().trim().split('\n').filter(Boolean)[0];
    if (victim) {
      await git(['update-ref', '-d', victim], { gitDir: other.bare });
      done.push(`deleted ${victim}`);
    }
  }
  if (opts.publish !== false) {
    const pub = await lab.publish();
    if (pub.code !== 0) throw new Error(`publish failed: ${pub.stderr}`);
  }
  return done.join(', ');
}

/**
 * What a reader of the published tree relies on at every instant: the
 * manifest parses; every repository it lists has an index.json that parses
 * and describes that repository; every bundle an index lists exists with the
 * size and sha256 the index gives. Returns the problems found.
 */
export async function checkPublishedTree(out: string): Promise<string[]> {
  const problems: string[] = [];
  let manifest: Manifest;
  try {
    manifest = parseManifest(await readFile(join(out, 'manifest.js.gz'))).manifest;
  } catch (err) {
    return [`manifest: ${(err as Error).message}`];
  }
  for (const path of Object.keys(manifest)) {
    const dir = join(out, ...path.slice(1).split('/'));
    let index: RepoIndex;
    try {
      index = parseRepoIndex(await readFile(join(dir, 'index.json')), path);
    } catch (err) {
      problems.push(`${path}: index.json: ${(err as Error).message}`);
      continue;
    }
    for (const b of index.bundles) {
      try {
        const bytes = await readFile(join(dir, b.uri));
        if (bytes.length !== b.size)
          problems.push(`${path}: ${b.uri} has ${bytes.length} bytes, the index says ${b.size}`);
        else if (createHash('sha256').update(bytes).digest('hex') !== b.sha256)
          problems.push(`${path}: ${b.uri} does not hash to its sha256`);
      } catch {
        problems.push(`${path}: ${b.uri} is listed but missing`);
      }
    }
  }
  return problems;
}

/** Temp files of atomic writes left anywhere in a published tree. */
export async function publishDebris(out: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.startsWith('.bm-tmp-')) found.push(relative(out, p));
    }
  };
  await walk(out);
  return found.sort();
}

/** How long a `publish` CLI run takes here (a kill at a random moment should land inside one). */
export async function publishRunMs(lab: Lab): Promise<number> {
  const started = Date.now();
  await runCli(['publish', '--toplevel', lab.originTop, '--out', lab.out, '--quiet']);
  return Date.now() - started;
}
