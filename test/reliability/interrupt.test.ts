/**
 * Ctrl-C and SIGTERM are not failures: real processes, real signals, sent
 * while a bundle is downloading over a slow link. The command exits 130 or
 * 143, keeps its partial download, records nothing as failing, and the same
 * command run again resumes from the bytes kept. (The daemon's SIGTERM is
 * in test/daemon.test.ts.)
 */
import test from 'ava';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gitText } from '../../src/git/exec.js';
import type { ReplicaStatus } from '../../src/replica/status.js';
import { runCli, startCli } from '../support/cli.js';
import { eventually } from '../support/daemon.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { fingerprintOf, pull, startOrigin, writeConfig, type Origin } from '../support/mirror.js';
import { recordedState } from '../support/state.js';

async function slowLink(t: { teardown(fn: () => Promise<void>): void }, origin: Origin): Promise<FaultProxy> {
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: origin.server.port },
    bytesPerSecond: 400_000,
  });
  t.teardown(() => proxy.close());
  return proxy;
}

/** Waits (bounded) until a partial in `dir` holds at least `bytes`; fails at once if the process ends first. */
async function partialGrows(
  dir: string,
  proc: { done: Promise<{ stderr: string }> },
  bytes = 200_000,
): Promise<number> {
  const ended = proc.done.then((r) => {
    throw new Error(`the process ended before downloading ${bytes} bytes:\n${r.stderr}`);
  });
  return Promise.race([ended, growing(dir, bytes)]);
}

function growing(dir: string, bytes: number): Promise<number> {
  return eventually(
    async () => {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const size = name.endsWith('.part') ? ((await stat(join(dir, name)).catch(() => null))?.size ?? 0) : 0;
        if (size >= bytes) return size;
      }
      return undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
}

async function partialBytes(dir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) n += (await stat(join(dir, name))).size;
  return n;
}

function noCrash(t: { false(v: boolean, m?: string): void }, stderr: string): void {
  t.false(/internal error|\n\s+at .*\(|Unhandled/.test(stderr), `no stack trace or internal error:\n${stderr}`);
}

test('Ctrl-C during clone exits 130, keeps the partial, and the same command resumes it', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 500_000 });
  const proxy = await slowLink(t, origin);
  const dir = join(origin.dir, 'work');
  const url = proxy.url('/pub/alpha.git');
  const first = startCli(t, ['clone', '--no-progress', url, dir]);
  await partialGrows(join(dir, '.git/bundlemirror/partial'), first);
  first.signal('SIGINT');
  const r1 = await first.done;
  t.is(r1.code, 130, r1.stderr);
  noCrash(t, r1.stderr);
  t.regex(r1.stderr, /interrupted; [\d.]+ MiB kept; rerun clone/);
  const kept = await partialBytes(join(dir, '.git/bundlemirror/partial'));
  t.true(kept > 0, 'the partial download is kept');

  proxy.configure({});
  const r2 = await runCli(['clone', '--no-progress', url, dir]);
  t.is(r2.code, 0, r2.stderr);
  t.regex(r2.stdout, /resumed [1-9]/);
  t.is(
    await gitText(['rev-parse', 'HEAD'], { cwd: dir }),
    await gitText(['rev-parse', 'main'], { gitDir: join(origin.toplevel, 'pub/alpha.git') }),
  );
});

async function slowReplica(t: Parameters<typeof slowLink>[0], origin: Origin, proxy: FaultProxy) {
  const toplevel = join(origin.dir, 'replica');
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: proxy.url('/manifest.js.gz'),
    site: `${origin.server.url}/git`,
  });
  return { config, toplevel };
}

async function statusOf(config: string): Promise<ReplicaStatus> {
  const r = await runCli(['status', '-c', config, '--json', '--no-size']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as ReplicaStatus;
}

test('Ctrl-C during pull exits 130, records no failure, and the next pull resumes the partial', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 500_000 });
  const proxy = await slowLink(t, origin);
  const { config, toplevel } = await slowReplica(t, origin, proxy);
  const run = startCli(t, ['pull', '-c', config, '--no-progress']);
  await partialGrows(join(toplevel, '.bundlemirror/partial'), run);
  run.signal('SIGINT');
  const r1 = await run.done;
  t.is(r1.code, 130, r1.stderr);
  noCrash(t, r1.stderr);
  t.regex(r1.stderr, /interrupted; [\d.]+ MiB kept; rerun pull/);
  t.true((await partialBytes(join(toplevel, '.bundlemirror/partial'))) > 0);
  t.false(
    Object.values(await recordedState(toplevel)).some((r) => r.lastError),
    'nothing recorded as failing',
  );
  const s = await statusOf(config);
  t.is(s.counts.failing, 0);
  t.false(s.lock.held, 'the lock is released');

  proxy.configure({});
  const r2 = await pull(config);
  t.is(r2.code, 0, r2.stderr);
  t.regex(r2.stdout, /saved [1-9][\d.]* [KM]iB by resuming/);
  t.is(
    await fingerprintOf(join(toplevel, 'pub/alpha.git')),
    await fingerprintOf(join(origin.toplevel, 'pub/alpha.git')),
  );
});
