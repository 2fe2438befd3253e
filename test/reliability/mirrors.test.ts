/**
 * `[remote] mirrors`: other hosts of the same published tree. A host killed
 * in the middle of a bundle hands over to another, which continues the same
 * partial file (bundles are content-addressed); a host serving bytes that
 * fail the sha256 is skipped for that file and reported. Bytes on the wire
 * are counted by a fault proxy in front of each host.
 */
import test from 'ava';
import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRepoIndex } from '../../src/manifest/repo-index.js';
import type { ReplicaStatus } from '../../src/replica/status.js';
import { startServer } from '../../src/server/server.js';
import { runCli, startCli, type CliProcess } from '../support/cli.js';
import { eventually } from '../support/daemon.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { fingerprintOf, startOrigin, writeConfig, type Origin } from '../support/mirror.js';

/** A second host serving `tree` (a copy of the published tree), behind its own link. */
async function host(
  t: Parameters<typeof startOrigin>[0],
  origin: Origin,
  tree: string,
  bytesPerSecond?: number,
): Promise<FaultProxy> {
  const server = await startServer({
    bundles: tree,
    toplevel: origin.toplevel,
    host: '127.0.0.1',
    port: 0,
    log: false,
  });
  t.teardown(() => server.close({ graceMs: 0 }));
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: server.port },
    ...(bytesPerSecond ? { bytesPerSecond } : {}),
  });
  t.teardown(() => proxy.close());
  return proxy;
}

async function bundleBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.bundle')) n += (await stat(join(e.parentPath, e.name))).size;
  }
  return n;
}

async function withMirrors(config: string, ...urls: string[]): Promise<void> {
  await writeFile(
    config,
    (await readFile(config, 'utf8')).replace('[remote]\n', `[remote]\nmirrors = ${urls.join(' ')}\n`),
  );
}

async function statusOf(config: string): Promise<ReplicaStatus> {
  return JSON.parse((await runCli(['status', '-c', config, '--json', '--no-size'])).stdout) as ReplicaStatus;
}

async function partialGrows(dir: string, proc: CliProcess, bytes: number): Promise<void> {
  const ended = proc.done.then((r) => {
    throw new Error(`the pull ended first:\n${r.stderr}`);
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

test('two hosts, the primary killed mid-download: the pull completes from the mirror without downloading again what it had (wire <= 1.05x)', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 500_000 });
  const a = await host(t, origin, origin.out, 400_000);
  const copy = join(origin.dir, 'mirror-tree');
  await cp(origin.out, copy, { recursive: true });
  const b = await host(t, origin, copy, 400_000);
  const toplevel = join(origin.dir, 'replica');
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: a.url('/manifest.js.gz'),
    site: `${origin.server.url}/git`,
  });
  await withMirrors(config, b.url('/'));
  const run = startCli(t, ['pull', '-c', config, '--no-progress']);
  await partialGrows(join(toplevel, '.bundlemirror/partial'), run, 600_000);
  const onA = a.stats.bytesDownstream;
  await a.close(); // the primary host goes away: open transfers cut, new connections refused
  const r = await run.done;
  t.is(r.code, 0, r.stderr);
  for (const [path, repo] of Object.entries(origin.repos))
    t.is(await fingerprintOf(join(toplevel, path)), await fingerprintOf(repo.bare), path);

  const wire = onA + b.stats.bytesDownstream;
  const bundles = await bundleBytes(origin.out);
  const ratio = wire / bundles;
  t.log(
    `bytes on the wire ${wire} (primary ${onA}, mirror ${b.stats.bytesDownstream}) for ${bundles} bytes of bundles: ${ratio.toFixed(3)}x`,
  );
  t.true(ratio <= 1.05, `${ratio.toFixed(3)}x`);

  const s = await statusOf(config);
  t.is(s.lastRun?.result, 'ok');
  const mirror = s.lastRun?.sources.find((x) => x.url === b.url('/'));
  const primary = s.lastRun?.sources.find((x) => x.url === a.url('/'));
  t.true((mirror?.bytes ?? 0) > 0, 'the mirror served the rest');
  t.true((primary?.failures ?? 0) > 0, 'the primary is reported failing');
  t.is(s.lastRun?.servedBy['/pub/alpha.git'], b.url('/'));
});

test('a host serving a bundle whose sha256 is wrong is skipped for it and reported; the other host completes it', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 200_000 });
  const forged = join(origin.dir, 'forged-tree');
  await cp(origin.out, forged, { recursive: true });
  const index = parseRepoIndex(await readFile(join(forged, 'pub/alpha.git/index.json')), '/pub/alpha.git');
  const file = join(forged, 'pub/alpha.git', index.bundles[0]!.uri);
  const bytes = await readFile(file);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 100) ^ 0xff, bytes.length - 100);
  await writeFile(file, bytes);
  const bad = await host(t, origin, forged);
  const good = await host(t, origin, origin.out);
  const toplevel = join(origin.dir, 'replica');
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: bad.url('/manifest.js.gz'),
    site: `${origin.server.url}/git`,
  });
  await withMirrors(config, good.url('/'));
  const r = await runCli(['pull', '-c', config, '--no-progress']);
  t.is(r.code, 0, r.stderr);
  t.true(r.stderr.includes(bad.url('/')), `the forging host is named:\n${r.stderr}`);
  t.is(await fingerprintOf(join(toplevel, 'pub/alpha.git')), await fingerprintOf(origin.repos['/pub/alpha.git']!.bare));
  const s = await statusOf(config);
  const reported = s.lastRun?.sources.find((x) => x.url === bad.url('/'));
  t.true((reported?.failures ?? 0) > 0);
  t.truthy(reported?.lastError);
});
