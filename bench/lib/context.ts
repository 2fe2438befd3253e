/**
 * What the scenarios share: the mode (quick or full), the work directory,
 * the generated large repository, one origin (toplevel, published tree,
 * `serve`, `git daemon`), the replica and git mirrors the bootstrap leaves
 * for the incremental scenario, and the rows of the final table.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Row } from './report.js';
import type { Running } from './servers.js';
import type { HistoryRepoSpec, LargeRepoSpec } from './data.js';

export interface Sizes {
  large: LargeRepoSpec;
  /** Repositories in the no-op poll. */
  pollRepos: number;
  /** Repositories in the no-op publish. */
  publishRepos: number;
  /** Repositories in the cron'd `git fetch` loop, extrapolated to pollRepos. */
  fetchLoopRepos: number;
  /** Base repository of the forkgroup scenario. */
  forkBase: LargeRepoSpec;
  /** The breaking link cuts every connection after this many bytes. */
  cutEveryBytes: number;
  /** Attempts given to `git clone` over the breaking link. */
  gitCloneAttempts: number;
  /** Bytes of each Range request in the concurrent serving test. */
  rangeBytes: number;
  concurrentRanges: number;
  /** Bytes of new content in the incremental push. */
  pushBytes: number;
  /** The repository with text history bootstrapped through a rate-limited link, and the link speeds (bytes/s). */
  history: HistoryRepoSpec;
  linkRates: number[];
}

export const QUICK: Sizes = {
  large: { commits: 300, meanBlobBytes: 64 << 10, tagEvery: 10, branches: 3, branchCommits: 10, seed: 'bench-quick' },
  pollRepos: 10_000,
  publishRepos: 500,
  fetchLoopRepos: 50,
  forkBase: {
    commits: 150,
    meanBlobBytes: 64 << 10,
    tagEvery: 10,
    branches: 1,
    branchCommits: 5,
    seed: 'bench-fork-quick',
  },
  cutEveryBytes: 4 << 20,
  gitCloneAttempts: 3,
  rangeBytes: 256 << 10,
  concurrentRanges: 200,
  pushBytes: 64 << 10,
  history: { files: 4000, lines: 150, commits: 3000, filesPerCommit: 4, tagEvery: 100, seed: 'history-quick' },
  linkRates: [25e6, 5e6],
};

export const FULL: Sizes = {
  large: { commits: 3000, meanBlobBytes: 96 << 10, tagEvery: 10, branches: 5, branchCommits: 20, seed: 'bench-full' },
  pollRepos: 10_000,
  publishRepos: 10_000,
  fetchLoopRepos: 200,
  forkBase: {
    commits: 1000,
    meanBlobBytes: 64 << 10,
    tagEvery: 10,
    branches: 2,
    branchCommits: 10,
    seed: 'bench-fork-full',
  },
  cutEveryBytes: 4 << 20,
  gitCloneAttempts: 5,
  rangeBytes: 1 << 20,
  concurrentRanges: 200,
  pushBytes: 64 << 10,
  history: { files: 8000, lines: 150, commits: 12000, filesPerCommit: 4, tagEvery: 200, seed: 'history-full' },
  linkRates: [25e6, 5e6],
};

export interface Origin {
  toplevel: string;
  out: string;
  /** Manifest path of the large repository. */
  bigPath: string;
  bigDir: string;
  serve: Running;
  daemon: Running;
}

export interface BenchContext {
  quick: boolean;
  reps: number;
  sizes: Sizes;
  /** This run's scratch directory (removed at the end unless --keep). */
  work: string;
  /** Generated data kept between runs (same spec: reused). */
  cache: string;
  rows: Row[];
  log(line: string): void;
  /** Large repository as generated (never modified: scenarios work on hard-linked copies). */
  large?: { dir: string; packBytes: number; reused: boolean };
  origin?: Origin;
  /** Left by the bootstrap for the incremental scenario. */
  replica?: { toplevel: string };
  mirrors?: { daemon: string; http: string };
  /** `--link-repo PATH`: the link scenario bootstraps a copy of this bare repository instead of the generated one. */
  linkRepo?: string;
  /** `--link-rates 25,5` (MB/s): the link speeds instead of the defaults. */
  linkRates?: number[];
  /** Free-form facts for the JSON (profiles, breakdowns). */
  facts: Record<string, unknown>;
}

export function addRow(ctx: BenchContext, row: Row): void {
  ctx.rows.push(row);
  ctx.log(
    `   ${row.scenario} / ${row.measure}: ours ${row.ours ?? '–'} ${row.unit}, ${row.theirsLabel || 'no alternative'} ${row.theirs ?? '–'}`,
  );
}

type ReplicaConfigOptions = { threads?: number; gitBase?: string; coreExtra?: string; logLevel?: 'info' | 'debug' };

/** A replica config (grokmirror format) for `toplevel`, reading `base` (serve or a proxy in front of it). */
export async function writeReplicaConfig(
  file: string,
  toplevel: string,
  base: string,
  opts: ReplicaConfigOptions = {},
): Promise<string> {
  await mkdir(toplevel, { recursive: true });
  await writeFile(file, replicaConfigText(file, toplevel, base, opts));
  return file;
}

/** The text writeReplicaConfig writes. */
export function replicaConfigText(
  file: string,
  toplevel: string,
  base: string,
  opts: ReplicaConfigOptions = {},
): string {
  return (
    `[core]\ntoplevel = ${toplevel}\nmanifest = ${join(toplevel, 'manifest.js.gz')}\nlog = ${file}.log\nloglevel = ${opts.logLevel ?? 'info'}\n${opts.coreExtra ?? ''}\n` +
    `[remote]\nsite = ${opts.gitBase ?? `${base}/git`}\nmanifest = ${base}/manifest.js.gz\n\n` +
    `[pull]\npull_threads = ${opts.threads ?? 2}\n`
  );
}
