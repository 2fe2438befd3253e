/**
 * An origin (bare repositories, published, served on 127.0.0.1) and a
 * replica config pointing at it: the fixture most replica tests start from.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile as readFileBytes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRepoIndex, type RepoIndex } from '../../src/manifest/repo-index.js';
import type { ExecutionContext } from 'ava';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { makeRepo, makeFork, showRefOf, tempDir, textHistoryRepo, type WorkTree } from './repos.js';
import { runCli, type CliResult } from './cli.js';
import { startFaultProxy, type FaultOptions, type FaultProxy } from './fault-proxy.js';
import { pullJson } from './reports.js';
import type { PullJsonReport } from '../../src/replica/pull-json.js';

export interface Origin {
  dir: string;
  toplevel: string;
  out: string;
  server: RunningServer;
  repos: Record<string, { bare: string; wt: WorkTree }>;
  publish(...args: string[]): Promise<CliResult>;
}

export async function startOrigin(
  t: ExecutionContext,
  opts: { bigBytes?: number; serve?: boolean } = {},
): Promise<Origin> {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'origin');
  const out = join(dir, 'published');
  const alpha = await makeRepo(dir, toplevel, 'pub/alpha.git', {
    description: 'Alpha',
    owner: 'Alice',
    commits: 4,
    bytesPerCommit: opts.bigBytes ?? 0,
  });
  const beta = await makeRepo(dir, toplevel, 'pub/sub/beta.git', { commits: 2 });
  const fork = await makeFork(dir, toplevel, alpha.bare, 'pub/forks/alpha-fork.git');
  const publish = async (...args: string[]) => {
    const r = await runCli(['publish', '--toplevel', toplevel, '--bundles', out, '--quiet', ...args]);
    if (r.code !== 0) throw new Error(`publish failed: ${r.stderr}`);
    return r;
  };
  await publish();
  const server = await startServer({ bundles: out, toplevel, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => server.close());
  return {
    dir,
    toplevel,
    out,
    server,
    repos: { '/pub/alpha.git': alpha, '/pub/sub/beta.git': beta, '/pub/forks/alpha-fork.git': fork },
    publish,
  };
}

/** One repository with a long text history (`/pub/history.git`), published with `flags` and served: the bootstrap tests' origin. */
export interface HistoryOrigin {
  dir: string;
  toplevel: string;
  out: string;
  bare: string;
  url: string;
  indexFile: string;
  index(): Promise<RepoIndex>;
  /** The first bundle of the index: the base. */
  bundleFile(): Promise<string>;
}

export async function startHistoryOrigin(t: ExecutionContext, flags: string[]): Promise<HistoryOrigin> {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'origin');
  const out = join(dir, 'published');
  const bare = join(toplevel, 'pub', 'history.git');
  await textHistoryRepo(bare);
  const r = await runCli(['publish', '--toplevel', toplevel, '--bundles', out, '--quiet', ...flags]);
  t.is(r.code, 0, r.stderr);
  const server = await startServer({ bundles: out, toplevel, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => server.close());
  const indexFile = join(out, 'pub', 'history.git', 'index.json');
  const index = async () => parseRepoIndex(await readFileBytes(indexFile), '/pub/history.git');
  const bundleFile = async () => join(out, 'pub', 'history.git', (await index()).bundles[0]!.uri);
  return { dir, toplevel, out, bare, url: server.url, indexFile, index, bundleFile };
}

export async function writeConfig(
  dir: string,
  opts: { toplevel: string; manifest: string; site: string; pull?: string; extra?: string; name?: string },
): Promise<string> {
  await mkdir(opts.toplevel, { recursive: true });
  const file = join(dir, opts.name ?? 'replica.conf');
  await writeFile(
    file,
    `[core]\ntoplevel = ${opts.toplevel}\nlog = ${join(dir, 'pull.log')}\n\n[remote]\nsite = ${opts.site}\nmanifest = ${opts.manifest}\n\n[pull]\npull_threads = 2\n${opts.pull ?? ''}\n${opts.extra ?? ''}\n`,
  );
  return file;
}

/**
 * A replica reading a served tree through the fault proxy (a rate limit,
 * cuts...), its toplevel under `origin.dir`; the proxy closes with the test.
 */
export async function replicaThrough(
  t: ExecutionContext,
  origin: { dir: string; url: string },
  name: string,
  faults: FaultOptions = {},
): Promise<{ proxy: FaultProxy; toplevel: string; config: string }> {
  const port = Number(new URL(origin.url).port);
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port }, ...faults });
  t.teardown(() => proxy.close());
  return { proxy, ...(await replicaVia(origin, proxy, name)) };
}

/** A replica whose manifest, bundles and git fetches all go through `proxy`, its toplevel under `origin.dir`. */
export async function replicaVia(
  origin: { dir: string },
  proxy: { url(path: string): string },
  name: string,
): Promise<{ config: string; toplevel: string }> {
  const toplevel = join(origin.dir, name);
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: proxy.url('/manifest.js.gz'),
    site: proxy.url('/git'),
    name: `${name}.conf`,
  });
  return { config, toplevel };
}

/** Replica config for an origin served directly (no proxy). */
export async function replicaFor(
  origin: Origin,
  name = 'replica',
  pull = '',
): Promise<{ config: string; toplevel: string }> {
  const toplevel = join(origin.dir, name);
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: `${origin.server.url}/manifest.js.gz`,
    site: `${origin.server.url}/git`,
    pull,
    name: `${name}.conf`,
  });
  return { config, toplevel };
}

export async function fingerprintOf(gitDir: string): Promise<string> {
  return createHash('sha1')
    .update(await showRefOf(gitDir))
    .digest('hex');
}

export function pull(config: string, ...args: string[]): Promise<CliResult> {
  return runCli(['pull', '-c', config, '--no-progress', ...args]);
}

/** `pull --json`, its report parsed. */
export function pullReport(config: string, ...args: string[]): Promise<CliResult & { report: PullJsonReport }> {
  return pullJson(['-c', config, ...args]);
}

/** Makes the next pull of beta fail: a push whose incremental bundle is served with one byte flipped. */
export async function breakBeta(origin: Origin): Promise<void> {
  const beta = origin.repos['/pub/sub/beta.git']!;
  await beta.wt.commit('change');
  await beta.wt.push('main');
  await origin.publish();
  const index = parseRepoIndex(
    await readFileBytes(join(origin.out, 'pub/sub/beta.git/index.json')),
    '/pub/sub/beta.git',
  );
  const file = join(origin.out, 'pub/sub/beta.git', index.bundles[1]!.uri);
  const bytes = await readFileBytes(file);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 30) ^ 0xff, bytes.length - 30);
  await writeFile(file, bytes);
}
