/**
 * Upstreams for the on-demand service: bare repositories served by
 * `git daemon` (git://) and by smart HTTP (`serve --toplevel`, /git/...),
 * both on 127.0.0.1; and the service itself, in-process, so a test can read
 * its counters.
 */
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { OnDemandService, type OnDemandOptions } from '../../src/on-demand/service.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { spawnGitDaemon } from './listener.js';
import { runCli } from './cli.js';
import { makeRepo, tempDir, type WorkTree } from './repos.js';

export interface Upstreams {
  dir: string;
  toplevel: string;
  /** Smart HTTP (serve /git/); null with `http: false`. */
  http: RunningServer | null;
  daemonPort: number;
  httpUrl(path: string): string;
  gitUrl(path: string): string;
  /** Stops git daemon: the git:// upstream becomes unreachable. */
  stopDaemon(): Promise<void>;
  /** Republish the toplevel (smart HTTP serves only what the manifest lists). */
  publish(): Promise<void>;
  repos: Record<string, { bare: string; wt: WorkTree }>;
}

/** `setup` adds repositories under the toplevel before it is published; `http: false` runs git daemon only. */
export async function startUpstreams(
  t: ExecutionContext,
  opts: { bigBytes?: number; http?: boolean; setup?: (toplevel: string, dir: string) => Promise<void> } = {},
): Promise<Upstreams> {
  const { dir, cleanup } = await tempDir('bm-od-');
  t.teardown(cleanup);
  const toplevel = join(dir, 'upstream');
  const alpha = await makeRepo(dir, toplevel, 'pub/alpha.git', { commits: 4, bytesPerCommit: opts.bigBytes ?? 0 });
  await opts.setup?.(toplevel, dir);
  const out = join(dir, 'upstream-published');
  const publish = async () => {
    const r = await runCli(['publish', '--quiet', '--toplevel', toplevel, '--out', out]);
    if (r.code !== 0) throw new Error(r.stderr);
  };
  let http: RunningServer | null = null;
  if (opts.http !== false) {
    await publish();
    http = await startServer({ bundles: out, toplevel, port: 0, log: false });
    t.teardown(() => http!.close());
  }
  const { child: daemon, port: daemonPort } = await spawnGitDaemon(toplevel);
  const daemonClosed = new Promise<void>((r) => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) r();
    else daemon.once('close', () => r());
  });
  const stopDaemon = async () => {
    daemon.kill('SIGTERM');
    await daemonClosed;
  };
  t.teardown(stopDaemon);
  return {
    dir,
    toplevel,
    http,
    daemonPort,
    httpUrl: (p) => `${http!.url}/git/${p}`,
    gitUrl: (p) => `git://127.0.0.1:${daemonPort}/${p}`,
    publish,
    stopDaemon,
    repos: { 'pub/alpha.git': alpha },
  };
}

export interface Service {
  service: OnDemandService;
  server: RunningServer;
  dir: string;
}

export async function startService(
  t: ExecutionContext,
  opts: Partial<OnDemandOptions> & { allow: string[] },
): Promise<Service> {
  const { dir, cleanup } = await tempDir('bm-odc-');
  const service = await OnDemandService.open({ dir: join(dir, 'cache'), ...opts });
  const server = await startServer({ bundles: null, port: 0, log: false, onDemand: service });
  t.teardown(async () => {
    await server.close();
    await service.close({ abort: true });
    await cleanup();
  });
  return { service, server, dir };
}

export interface ApiAnswer {
  status: number;
  retryAfter: string | null;
  body: Record<string, any>;
}

export async function ask(base: string, url: string, method: 'POST' | 'GET' = 'POST'): Promise<ApiAnswer> {
  const res =
    method === 'POST'
      ? await fetch(`${base}/api/on-demand`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ url }),
        })
      : await fetch(`${base}/api/on-demand?url=${encodeURIComponent(url)}`);
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as Record<string, any>,
  };
}

/** Polls (bounded) until the job leaves the working states. */
export async function waitForJob(base: string, url: string): Promise<ApiAnswer> {
  for (let i = 0; i < 600; i++) {
    const a = await ask(base, url, 'GET');
    if (a.status !== 202) return a;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job for ${url} still working after 600 polls`);
}
