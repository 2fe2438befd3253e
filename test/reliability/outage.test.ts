/**
 * A server that goes away for a while must cost time, not the download:
 * the origin (and the link in front of it) stops for about 10 s in the
 * middle of a bundle and comes back on the same port; `pull` and `clone`
 * wait it out (announcing what they wait for) and finish in one command,
 * resuming the partial. A server that stays down past --retry-for is
 * reported, with a hint that fits the command; a mistyped manifest URL is
 * reported at once.
 */
import test from 'ava';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gitText } from '../../src/git/exec.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { runCli, startCli, type CliProcess } from '../support/cli.js';
import { eventually } from '../support/daemon.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { fingerprintOf, startOrigin, writeConfig } from '../support/mirror.js';

const OUTAGE_MS = 10_000;

/** The origin behind a slow link; `outage()` stops both, waits, and starts them again on the same ports. */
async function flakyOrigin(t: Parameters<typeof startOrigin>[0]) {
  const origin = await startOrigin(t, { bigBytes: 500_000 });
  let server: RunningServer = origin.server;
  const port = server.port;
  const link = { bytesPerSecond: 500_000 };
  let proxy: FaultProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port }, ...link });
  const proxyPort = proxy.port;
  const proxies = [proxy];
  t.teardown(async () => {
    await proxy.close();
    await server.close({ graceMs: 0 });
  });
  return {
    origin,
    url: (path: string) => `http://127.0.0.1:${proxyPort}${path}`,
    async outage(): Promise<void> {
      await proxy.close();
      await server.close({ graceMs: 0 });
      await new Promise((r) => setTimeout(r, OUTAGE_MS));
      server = await startServer({
        bundles: origin.out,
        toplevel: origin.toplevel,
        host: '127.0.0.1',
        port,
        log: false,
      });
      proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port }, port: proxyPort });
      proxies.push(proxy);
    },
    /** Bytes the link carried to the client, before and after the outage. */
    wireBytes: () => proxies.reduce((n, p) => n + p.stats.bytesDownstream, 0),
  };
}

async function bundleBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.bundle')) n += (await stat(join(e.parentPath, e.name))).size;
  }
  return n;
}

async function partialGrows(dir: string, proc: CliProcess, bytes = 300_000): Promise<void> {
  const ended = proc.done.then((r) => {
    throw new Error(`the command ended before the outage:\n${r.stderr}`);
  });
  const grown = eventually(
    async () => {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.endsWith('.part') && ((await stat(join(dir, name)).catch(() => null))?.size ?? 0) >= bytes)
          return true;
      }
      return undefined;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
  await Promise.race([ended, grown]);
}

test('pull rides out a 10-second origin outage in the middle of a bundle and finishes in one run', async (t) => {
  const f = await flakyOrigin(t);
  const toplevel = join(f.origin.dir, 'replica');
  const config = await writeConfig(f.origin.dir, {
    toplevel,
    manifest: f.url('/manifest.js.gz'),
    site: `${f.origin.server.url}/git`,
  });
  const run = startCli(t, ['pull', '-c', config, '--json', '--retry-for', '2m'], { timeoutMs: 150_000 });
  await partialGrows(join(toplevel, '.bundlemirror/partial'), run);
  await f.outage();
  const r = await run.done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /waiting for [0-9a-f]{64}\.bundle/, 'it says what it waits for');
  t.like(JSON.parse(r.stdout), { counts: { failed: 0 } });
  // the partial was resumed after the outage, not downloaded again
  t.true(f.wireBytes() <= 1.05 * (await bundleBytes(f.origin.out)) + 64 * 1024, `${f.wireBytes()} bytes on the wire`);
  for (const [path, repo] of Object.entries(f.origin.repos))
    t.is(await fingerprintOf(join(toplevel, path)), await fingerprintOf(repo.bare), path);
});

test('clone rides out a 10-second origin outage and finishes in one command', async (t) => {
  const f = await flakyOrigin(t);
  const dir = join(f.origin.dir, 'work');
  const run = startCli(
    t,
    ['clone', '--no-progress', '--git-url', `${f.origin.server.url}/git/pub/alpha.git`, f.url('/pub/alpha.git'), dir],
    { timeoutMs: 150_000 },
  );
  await partialGrows(join(dir, '.git/bundlemirror/partial'), run);
  await f.outage();
  const r = await run.done;
  t.is(r.code, 0, r.stderr);
  t.true(
    f.wireBytes() <= 1.05 * (await bundleBytes(join(f.origin.out, 'pub/alpha.git'))) + 64 * 1024,
    `${f.wireBytes()} bytes on the wire`,
  );
  t.is(
    await gitText(['rev-parse', 'HEAD'], { cwd: dir }),
    await gitText(['rev-parse', 'main'], { gitDir: f.origin.repos['/pub/alpha.git']!.bare }),
  );
});

test('a server down for longer than --retry-for is reported with E_HTTP and a hint for clone; a 404 manifest URL fails at once', async (t) => {
  const origin = await startOrigin(t);
  const url = origin.server.url;
  await origin.server.close({ graceMs: 0 });
  const started = Date.now();
  const c = await runCli(
    ['clone', '--no-progress', '--retry-for', '2s', `${url}/pub/alpha.git`, join(origin.dir, 'work')],
    { timeoutMs: 60_000 },
  );
  t.is(c.code, 1, c.stderr);
  t.regex(c.stderr, /\[E_HTTP\]/);
  t.false(/next pull/.test(c.stderr), c.stderr);
  t.true(Date.now() - started < 30_000, 'it gave up after about --retry-for');

  const other = await startOrigin(t);
  const toplevel = join(other.dir, 'replica');
  const config = await writeConfig(other.dir, {
    toplevel,
    manifest: `${other.server.url}/no/such/manifest.js.gz`,
    site: `${other.server.url}/git`,
  });
  const p = await runCli(['pull', '-c', config, '--no-progress']);
  t.is(p.code, 1, p.stderr);
  t.regex(p.stderr, /\[E_NOT_FOUND\]/);
  t.regex(p.stderr, /\[remote\] manifest/);
});
