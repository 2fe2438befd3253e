import test from 'ava';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { renderMetrics } from '../src/replica/metrics.js';
import type { ReplicaStatus } from '../src/replica/status.js';
import { runCli, startCli } from './support/cli.js';
import { eventually } from './support/daemon.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { makeRepo } from './support/repos.js';
import { breakBeta, pull, replicaFor, startOrigin, writeConfig } from './support/mirror.js';

async function statusJson(config: string, ...args: string[]): Promise<ReplicaStatus> {
  const r = await runCli(['status', '-c', config, '--json', ...args]);
  if (r.code !== 0) throw new Error(`status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ReplicaStatus;
}

function stateOf(s: ReplicaStatus): Record<string, string> {
  return Object.fromEntries(s.repos.map((r) => [r.path, r.state]));
}

test('before the first pull, status says no manifest is known and exits 0', async (t) => {
  const origin = await startOrigin(t);
  const { config } = await replicaFor(origin);
  const r = await runCli(['status', '-c', config]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /no remote manifest known yet/);
  t.regex(r.stdout, /in sync 0, behind 0, failing 0, not cloned 0/);
  const s = await statusJson(config);
  t.is(s.version, 1);
  t.is(s.manifest.source, 'none');
  t.is(s.counts.total, 0);
  t.deepEqual(s.repos, []);
});

test('after a pull every repository is in sync, with its size and last success, in the table and in JSON', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);

  const s = await statusJson(config);
  t.is(s.toplevel, toplevel);
  t.is(s.manifest.source, 'cached');
  t.is(s.manifest.repositories, 3);
  t.false(s.lock.held);
  t.deepEqual(stateOf(s), {
    '/pub/alpha.git': 'in-sync',
    '/pub/forks/alpha-fork.git': 'in-sync',
    '/pub/sub/beta.git': 'in-sync',
  });
  t.like(s.counts, { 'in-sync': 3, behind: 0, failing: 0, 'not-cloned': 0, total: 3 });
  for (const r of s.repos) {
    t.true(r.onDisk);
    t.truthy(r.sizeBytes && r.sizeBytes > 0, `${r.path} has a size`);
    t.regex(r.lastSuccess ?? '', /^\d{4}-\d\d-\d\dT/);
    t.is(r.lastError, null);
    t.is(r.localFingerprint, r.remoteFingerprint);
  }
  t.is(
    s.sizeBytes,
    s.repos.reduce((n, r) => n + (r.sizeBytes ?? 0), s.objstoreBytes ?? 0),
  );

  const table = await runCli(['status', '-c', config]);
  t.is(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  t.regex(lines[0]!, /remote manifest saved .* \(3 selected\); no pull running/);
  t.regex(lines[1]!, /^STATE\s+REPOSITORY\s+SIZE\s+LAST SUCCESS\s+NOTE$/);
  t.regex(lines[2]!, /^in-sync\s+\/pub\/alpha\.git\s+\d[\d.]* (B|KiB|MiB)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
  t.regex(
    lines.at(-1)!,
    /^in sync 3, behind 0, failing 0, not cloned 0; [\d.]+ \w+ of objects( \([\d.]+ \w+ in shared object stores\))?$/,
  );

  const noSize = await statusJson(config, '--no-size');
  t.is(noSize.sizeBytes, null);
  t.is(noSize.objstoreBytes, null);
  t.true(noSize.repos.every((r) => r.sizeBytes === null));
});

test('a failing repository shows its last error and when; --fetch shows one behind and one not yet cloned', async (t) => {
  const origin = await startOrigin(t);
  const { config } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  await breakBeta(origin);
  t.is((await pull(config)).code, 1);

  const s = await statusJson(config);
  const beta = s.repos.find((r) => r.path === '/pub/sub/beta.git')!;
  t.is(beta.state, 'failing');
  t.is(beta.lastError?.code, 'E_BUNDLE_VERIFY');
  t.regex(beta.lastError?.at ?? '', /^\d{4}-\d\d-\d\dT/);
  t.regex(beta.lastError?.message ?? '', /sha256/);
  t.is(beta.failures, 1);
  t.true(beta.onDisk);
  t.not(beta.localFingerprint, beta.remoteFingerprint);

  // the origin moves on: alpha gets a push, a new repository appears
  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('new work');
  await alpha.wt.push('main');
  await makeRepo(origin.dir, origin.toplevel, 'pub/gamma.git', { commits: 1 });
  await origin.publish();

  // without --fetch, status only knows the manifest the last pull saw
  t.deepEqual(stateOf(await statusJson(config)), {
    '/pub/alpha.git': 'in-sync',
    '/pub/forks/alpha-fork.git': 'in-sync',
    '/pub/sub/beta.git': 'failing',
  });
  const fetched = await statusJson(config, '--fetch');
  t.is(fetched.manifest.source, 'fetched');
  t.deepEqual(stateOf(fetched), {
    '/pub/alpha.git': 'behind',
    '/pub/forks/alpha-fork.git': 'in-sync',
    '/pub/gamma.git': 'not-cloned',
    '/pub/sub/beta.git': 'failing',
  });
  t.like(fetched.counts, { 'in-sync': 1, behind: 1, failing: 1, 'not-cloned': 1, total: 4 });
  const gamma = fetched.repos.find((r) => r.path === '/pub/gamma.git')!;
  t.like(gamma, { onDisk: false, sizeBytes: null, lastSuccess: null, localFingerprint: null });

  const table = await runCli(['status', '-c', config, '--fetch']);
  t.is(table.code, 0, table.stderr);
  t.regex(table.stdout, /^behind\s+\/pub\/alpha\.git\s+.*verified at [0-9a-f]{12}, the manifest has [0-9a-f]{12}$/m);
  t.regex(
    table.stdout,
    /^failing\s+\/pub\/sub\/beta\.git\s+.*E_BUNDLE_VERIFY at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ: .*sha256/m,
  );
  t.regex(table.stdout, /^not-cloned\s+\/pub\/gamma\.git\s+-\s+never\s+in the remote manifest, not on disk yet$/m);
  t.regex(table.stdout, /in sync 1, behind 1, failing 1, not cloned 1;/);

  // the Prometheus rendering of the same status
  const metrics = renderMetrics(fetched);
  t.regex(metrics, /^# TYPE bundlemirror_replica_repositories gauge$/m);
  t.regex(metrics, /^bundlemirror_replica_repositories\{state="behind"\} 1$/m);
  t.regex(metrics, /^bundlemirror_replica_repositories\{state="not-in-manifest"\} 0$/m);
  t.regex(metrics, /^bundlemirror_replica_repository_state\{repo="\/pub\/sub\/beta\.git",state="failing"\} 1$/m);
  t.regex(metrics, /^bundlemirror_replica_repository_failures\{repo="\/pub\/sub\/beta\.git"\} 1$/m);
  t.regex(metrics, /^bundlemirror_replica_lock_held 0$/m);
  t.notRegex(renderMetrics(fetched, { perRepo: false }), /repo="/);
});

test('without its state file, repositories on disk show as behind (not verified), never as in sync', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  await rm(join(toplevel, '.bundlemirror/state.json'));
  const s = await statusJson(config);
  t.like(s.counts, { behind: 3, total: 3 });
  t.true(s.repos.every((r) => r.reason === 'on disk, but not verified by this replica yet'));
});

test('metrics escape label values as the Prometheus text format requires', (t) => {
  const status: ReplicaStatus = {
    version: 1,
    generated: '2026-11-22T10:00:00.000Z',
    toplevel: '/srv',
    config: '',
    manifest: { source: 'cached', location: '/x', savedAt: '2026-11-22T09:00:00.000Z', repositories: 1, signed: null },
    lastRun: null,
    downloads: [],
    lock: { held: false, pid: null, hostname: null, startedAt: null },
    counts: { 'in-sync': 1, behind: 0, failing: 0, 'not-cloned': 0, 'not-in-manifest': 0, unknown: 0, total: 1 },
    sizeBytes: 10,
    objstoreBytes: 0,
    lfs: null,
    repos: [
      {
        path: '/a"b\\c.git',
        state: 'in-sync',
        reason: '',
        onDisk: true,
        localFingerprint: null,
        remoteFingerprint: null,
        sizeBytes: 10,
        lfsObjects: null,
        lfsBytes: null,
        lastSuccess: '2026-11-22T09:30:00.500Z',
        lastError: null,
        failures: 0,
        lastAttempt: null,
        downloading: [],
      },
    ],
  };
  const m = renderMetrics(status);
  t.regex(m, /^bundlemirror_replica_repository_state\{repo="\/a\\"b\\\\c\.git",state="in-sync"\} 1$/m);
  t.regex(
    m,
    /^bundlemirror_replica_repository_last_success_timestamp_seconds\{repo="\/a\\"b\\\\c\.git"\} 1795339800\.5$/m,
  );
  t.regex(m, /^bundlemirror_replica_remote_manifest_saved_timestamp_seconds 1795338000$/m);
  t.true(m.endsWith('\n'));
});

test('status tells a quiet origin from an unreachable one: the last run, how it ended and its error', async (t) => {
  const origin = await startOrigin(t);
  const { config } = await replicaFor(origin, 'replica', 'retry_for = 1s\n');
  t.is((await pull(config)).code, 0);
  t.is((await statusJson(config)).lastRun?.result, 'ok');
  t.is((await pull(config)).code, 0);
  const quiet = await statusJson(config);
  t.is(quiet.lastRun?.result, 'unchanged');
  t.is(quiet.lastRun?.error, null);
  t.regex((await runCli(['status', '-c', config])).stdout, /last pull .*unchanged/);

  await origin.server.close({ graceMs: 0 });
  t.is((await pull(config)).code, 1);
  const down = await statusJson(config);
  t.is(down.lastRun?.result, 'error');
  t.is(down.lastRun?.error?.code, 'E_HTTP');
  t.is(down.counts['in-sync'], 3, 'the repositories keep their state');
  for (const r of down.repos) t.is(r.lastAttempt?.result, 'ok');
  t.regex((await runCli(['status', '-c', config])).stdout, /last pull .*FAILED E_HTTP/);
});

test('while a pull downloads, status shows each file with its progress (from the file the pull updates; no lock needed)', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 500_000 });
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: origin.server.port },
    bytesPerSecond: 300_000,
  });
  t.teardown(() => proxy.close());
  const toplevel = join(origin.dir, 'slow');
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: proxy.url('/manifest.js.gz'),
    site: `${origin.server.url}/git`,
    name: 'slow.conf',
  });
  const run = startCli(t, ['pull', '-c', config, '--no-progress']);
  const seen = await eventually(
    async () => {
      const s = await statusJson(config, '--no-size');
      const d = s.downloads.find((x) => x.repo === '/pub/alpha.git' && x.received > 0);
      return d ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  t.true(seen.lock.held);
  const alpha = seen.repos.find((r) => r.path === '/pub/alpha.git');
  t.true((alpha?.downloading.length ?? 0) > 0);
  t.true(alpha!.downloading[0]!.received < alpha!.downloading[0]!.total);
  t.is((await run.done).code, 0);
  const after = await statusJson(config, '--no-size');
  t.deepEqual(after.downloads, [], 'nothing listed once the pull is done');
});
