/**
 * Network faults end to end: `bundlemirror pull` (manifest, index.json,
 * bundles, git) through a link that cuts, stalls, crawls or resets, and
 * against servers that get ranges wrong, replace files, throttle or
 * restart. test/transfer.test.ts covers each fault at the downloader; here
 * the whole pull must end with every repository verified (fingerprint equal
 * to the origin's, git fsck clean) or with a clear failure that names the
 * repository and heals on the next run. Nothing is ever spliced, and no
 * partial download grows past its bundle's size.
 */
import test, { type ExecutionContext } from 'ava';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { startFaultProxy, type FaultOptions, type FaultProxy } from '../support/fault-proxy.js';
import { startFlakyOrigin, type FlakyOrigin } from '../support/flaky-origin.js';
import { replicaVia, startOrigin, writeConfig, type Origin } from '../support/mirror.js';
import { FAST_ENV, leftovers, oversizedPartials, publishedBundles, verifyMirror } from '../support/reliability.js';
import { runCli } from '../support/cli.js';
import type { PullJsonReport } from '../../src/replica/pull-json.js';
import { repoIn } from '../support/reports.js';
import { recordedState } from '../support/state.js';

const PATHS = ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git'];

async function assertVerified(t: ExecutionContext, origin: Origin, replicaTop: string, paths = PATHS): Promise<void> {
  for (const c of await verifyMirror(origin.toplevel, replicaTop, paths)) t.true(c.ok, `${c.path}: ${c.why}`);
}

async function linkTo(t: ExecutionContext, origin: Origin, faults: FaultOptions): Promise<FaultProxy> {
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: origin.server.port }, ...faults });
  t.teardown(() => proxy.close());
  return proxy;
}

const fastPull = (config: string, ...args: string[]) =>
  runCli(['pull', '-c', config, '--no-progress', ...args], { env: FAST_ENV });

/** sha256s of the bundles the replica applied, from its state file (what it actually needed). */
async function appliedBundles(toplevel: string): Promise<Set<string>> {
  return new Set(Object.values(await recordedState(toplevel)).flatMap((r) => r.appliedBundles ?? []));
}

// ---------------------------------------------------------------- the acceptance test

test('a pull through a link that cuts every connection after 256 KiB completes in one run: every fingerprint equal, fsck clean, at most 5% over the bundle sizes on the wire', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 1_000_000 });
  const proxy = await linkTo(t, origin, { cutAfterBytes: 256 * 1024 });
  const { config, toplevel } = await replicaVia(origin, proxy, 'replica');

  const r = await fastPull(config, '--json');
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as PullJsonReport;
  t.like(report.counts, { cloned: 3, updated: 0, unchanged: 0, failed: 0 });
  t.like(repoIn(report, '/pub/alpha.git'), { action: 'cloned', via: 'bundles' });
  await assertVerified(t, origin, toplevel);

  const known = await publishedBundles(origin.out);
  const applied = [...(await appliedBundles(toplevel))];
  const bundleBytes = applied.reduce((n, sha) => n + known.get(sha)!.size, 0);
  t.true(Math.max(...applied.map((sha) => known.get(sha)!.size)) > 4_000_000, 'one bundle of several MB');
  t.true(proxy.stats.cuts >= Math.floor(bundleBytes / (256 * 1024)) - 1, `the link was cut ${proxy.stats.cuts} times`);
  const ratio = proxy.stats.bytesDownstream / bundleBytes;
  t.log(
    `${proxy.stats.bytesDownstream} bytes on the wire for ${bundleBytes} bytes of bundles (${ratio.toFixed(4)}x), ${proxy.stats.cuts} cuts`,
  );
  t.true(ratio <= 1.05, `${ratio.toFixed(4)}x`);
  t.deepEqual(await leftovers(toplevel), []);
});

// ---------------------------------------------------------------- the link

test('connections cut at seeded random byte offsets, FIN or RST, still end verified', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 300_000 });
  for (const [i, cutStyle] of (['close', 'reset'] as const).entries()) {
    const proxy = await linkTo(t, origin, { cutAfterBytes: { min: 1, max: 200_000, seed: 42 + i }, cutStyle });
    const { config, toplevel } = await replicaVia(origin, proxy, `replica-${cutStyle}`);
    // a cut inside the headers of the manifest request, several times in a row, can exhaust its retries: runs repeat, as cron would
    let r = await fastPull(config);
    for (let run = 1; r.code !== 0 && run < 4; run += 1) {
      t.regex(r.stderr, /\[E_(HTTP|DOWNLOAD|GIT)\]/, 'a failure says what failed');
      r = await fastPull(config);
    }
    t.is(r.code, 0, r.stderr);
    t.true(proxy.stats.cuts > 5, `${cutStyle}: ${proxy.stats.cuts} cuts`);
    await assertVerified(t, origin, toplevel);
    t.deepEqual(await oversizedPartials(toplevel, await publishedBundles(origin.out)), []);
    t.deepEqual(await leftovers(toplevel), []);
  }
});

test('stalls with no bytes at all (before the headers) and in mid-body trip the idle timeout and are retried', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 300_000 });
  const before = await linkTo(t, origin, { stallAfterBytes: 0, faultyConnections: 2 });
  const a = await replicaVia(origin, before, 'replica-a');
  let r = await fastPull(a.config);
  t.is(r.code, 0, r.stderr);
  t.is(before.stats.stalls, 2);
  await assertVerified(t, origin, a.toplevel);

  // the manifest and index.json are small; the third connection is the big bundle
  const midBody = await linkTo(t, origin, { stallAfterBytes: 400_000, faultyConnections: 6 });
  const b = await replicaVia(origin, midBody, 'replica-b');
  r = await fastPull(b.config, '-v');
  t.is(r.code, 0, r.stderr);
  t.true(midBody.stats.stalls >= 1);
  await assertVerified(t, origin, b.toplevel);
  t.deepEqual(await leftovers(b.toplevel), []);
});

test('a very slow link (64 KiB/s) is slow, not broken: no timeout fires and the pull completes', async (t) => {
  const origin = await startOrigin(t);
  const proxy = await linkTo(t, origin, { bytesPerSecond: 64 * 1024 });
  const { config, toplevel } = await replicaVia(origin, proxy, 'replica');
  const started = Date.now();
  const r = await fastPull(config);
  t.is(r.code, 0, r.stderr);
  const seconds = (Date.now() - started) / 1000;
  t.true(
    proxy.stats.bytesDownstream / seconds < 80 * 1024,
    `${Math.round(proxy.stats.bytesDownstream / seconds)} B/s: the link really was slow`,
  );
  await assertVerified(t, origin, toplevel);
});

test('connections reset while the response headers arrive are retried', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 100_000 });
  const proxy = await linkTo(t, origin, {
    cutAfterBytes: { min: 1, max: 150, seed: 7 },
    cutStyle: 'reset',
    faultyConnections: 3,
  });
  const { config, toplevel } = await replicaVia(origin, proxy, 'replica');
  const r = await fastPull(config);
  t.is(r.code, 0, r.stderr);
  t.is(proxy.stats.cuts, 3);
  await assertVerified(t, origin, toplevel);
});

test('connection refused while the origin restarts: the download resumes once it is back', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 600_000 });
  let proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: origin.server.port },
    bytesPerSecond: 1_000_000,
  });
  const port = proxy.port;
  t.teardown(() => proxy.close());
  const { config, toplevel } = await replicaVia(origin, proxy, 'replica');
  const running = fastPull(config, '--json');
  // let the big bundle get going, then take the origin away (sockets die, new connections are refused)
  const partials = join(toplevel, '.bundlemirror/partial');
  let midway = false;
  for (let i = 0; i < 1000 && !midway; i += 1) {
    const names = await readdir(partials).catch(() => [] as string[]);
    const sizes = await Promise.all(
      names
        .filter((n) => n.endsWith('.part'))
        .map((n) =>
          stat(join(partials, n)).then(
            (s) => s.size,
            () => 0,
          ),
        ),
    );
    midway = sizes.some((s) => s > 500_000);
    if (!midway) await new Promise((r) => setTimeout(r, 20));
  }
  t.true(midway, 'the origin went away in the middle of the big bundle');
  const beforeOutage = proxy.stats.bytesDownstream;
  await proxy.close();
  // the downloader reconnects at once after progress: that attempt, and the next ones for a while, are refused
  await new Promise((r) => setTimeout(r, 800));
  proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: origin.server.port }, port });
  const r = await running;
  t.is(r.code, 0, r.stderr);
  t.like((JSON.parse(r.stdout) as PullJsonReport).counts, { cloned: 3 });
  await assertVerified(t, origin, toplevel);
  const known = await publishedBundles(origin.out);
  const bundleBytes = [...(await appliedBundles(toplevel))].reduce((n, sha) => n + known.get(sha)!.size, 0);
  const wire = beforeOutage + proxy.stats.bytesDownstream;
  t.true(wire <= bundleBytes * 1.05, `${wire} bytes on the wire for ${bundleBytes} of bundles: resumed, not restarted`);
  t.deepEqual(await leftovers(toplevel), []);
});

// ---------------------------------------------------------------- servers that get HTTP wrong

/** The published tree served by the misbehaving test origin (git fetches still go to the real server). */
async function flakyTree(
  t: ExecutionContext,
  origin: Origin,
): Promise<{ flaky: FlakyOrigin; bigBundle: string; bigSize: number }> {
  const flaky = await startFlakyOrigin();
  t.teardown(() => flaky.close());
  let bigBundle = '';
  let bigSize = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!e.name.startsWith('.')) {
        const urlPath = '/' + relative(origin.out, p);
        await flaky.setFileFromDisk(urlPath, p);
        const size = (await stat(p)).size;
        if (e.name.endsWith('.bundle') && size > bigSize) [bigBundle, bigSize] = [urlPath, size];
      }
    }
  };
  await walk(origin.out);
  return { flaky, bigBundle, bigSize };
}

async function replicaOfFlaky(origin: Origin, flaky: FlakyOrigin, name: string) {
  const toplevel = join(origin.dir, name);
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: flaky.url('/manifest.js.gz'),
    site: `${origin.server.url}/git`,
    name: `${name}.conf`,
  });
  return { config, toplevel };
}

test('a server that ignores Range (200 to a resume) makes the pull start that bundle over, never append', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 300_000 });
  const { flaky, bigBundle, bigSize } = await flakyTree(t, origin);
  flaky.behave(bigBundle, { stalls: { count: 1, afterBytes: Math.floor(bigSize / 2) }, ignoreRange: true });
  const { config, toplevel } = await replicaOfFlaky(origin, flaky, 'replica');
  const r = await fastPull(config, '--json');
  t.is(r.code, 0, r.stderr);
  t.like(repoIn(JSON.parse(r.stdout) as PullJsonReport, '/pub/alpha.git'), { action: 'cloned', via: 'bundles' });
  const reqs = flaky.requests.filter((q) => q.path === bigBundle);
  t.true(
    reqs.some((q) => q.range !== undefined && q.status === 200),
    'the resume got a whole file',
  );
  await assertVerified(t, origin, toplevel);
  t.deepEqual(await leftovers(toplevel), []);
});

test('a 206 with the wrong Content-Range (wrong start, wrong total, garbage) is discarded and the bundle restarts cleanly', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 200_000 });
  const { flaky, bigBundle, bigSize } = await flakyTree(t, origin);
  for (const wrong of ['start', 'total', 'garbage'] as const) {
    flaky.behave(
      bigBundle,
      { stalls: { count: 1, afterBytes: Math.floor(bigSize / 3) }, wrongContentRange: wrong },
      { replace: true },
    );
    const { config, toplevel } = await replicaOfFlaky(origin, flaky, `replica-${wrong}`);
    const r = await fastPull(config);
    t.is(r.code, 0, `${wrong}: ${r.stderr}`);
    const reqs = flaky.requests.filter((q) => q.path === bigBundle).slice(-3);
    t.deepEqual(
      reqs.map((q) => [q.range === undefined ? 'whole' : 'resume', q.status]),
      [
        ['whole', 200],
        ['resume', 206],
        ['whole', 200],
      ],
      wrong,
    );
    await assertVerified(t, origin, toplevel);
    t.deepEqual(await leftovers(toplevel), [], wrong);
  }
});

test('a bundle replaced under the same URL mid-resume: If-Range brings the new file whole, its hash refuses it, refs stay; the next run heals', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 300_000 });
  const { flaky, bigBundle, bigSize } = await flakyTree(t, origin);
  const original = await readFile(join(origin.out, bigBundle));
  const other = Buffer.from(original);
  other.writeUInt8(other.readUInt8(other.length - 100) ^ 0xff, other.length - 100); // same size, other bytes: a CDN serving another version
  flaky.behave(bigBundle, { replaceAfter: { bytes: Math.floor(bigSize / 2), body: other } });
  const { config, toplevel } = await replicaOfFlaky(origin, flaky, 'replica');
  let r = await fastPull(config);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /\/pub\/alpha\.git: .*sha256 is [0-9a-f]{64}, not [0-9a-f]{64} as the index says \[E_BUNDLE_VERIFY\]/,
  );
  const resumes = flaky.requests.filter((q) => q.path === bigBundle && q.ifRange !== undefined);
  t.true(
    resumes.length >= 1 && resumes.every((q) => q.status === 200),
    'If-Range turned the resume into the whole new file',
  );
  t.deepEqual(await oversizedPartials(toplevel, await publishedBundles(origin.out)), []);
  await t.throwsAsync(stat(join(toplevel, 'pub/alpha.git')), undefined, 'no repository was made from the wrong bytes');
  await assertVerified(t, origin, toplevel, ['/pub/sub/beta.git']);

  flaky.setFile(bigBundle, original); // the origin serves the right bytes again
  r = await fastPull(config);
  t.is(r.code, 0, r.stderr);
  await assertVerified(t, origin, toplevel);
  t.deepEqual(await leftovers(toplevel), []);
});

test('bursts of 503 and 429 with Retry-After on the manifest, an index and a bundle are waited out', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 100_000 });
  const { flaky, bigBundle } = await flakyTree(t, origin);
  flaky.behave('/manifest.js.gz', { failures: { count: 2, status: 503 } });
  flaky.behave('/pub/sub/beta.git/index.json', { failures: { count: 2, status: 429, retryAfter: '1' } });
  flaky.behave(bigBundle, { failures: { count: 4, status: 502 } });
  const { config, toplevel } = await replicaOfFlaky(origin, flaky, 'replica');
  const started = Date.now();
  const r = await fastPull(config);
  t.is(r.code, 0, r.stderr);
  t.true(Date.now() - started >= 2000, 'Retry-After: 1 was honoured twice');
  t.deepEqual(flaky.stats('/manifest.js.gz').statuses, [503, 503, 200]);
  t.deepEqual(flaky.stats('/pub/sub/beta.git/index.json').statuses, [429, 429, 200]);
  t.deepEqual(flaky.stats(bigBundle).statuses, [502, 502, 502, 502, 200]);
  await assertVerified(t, origin, toplevel);
});

test('an origin that keeps failing is a clear, retried failure: the repository is named, nothing half-done remains, the next run heals', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 100_000 });
  const { flaky, bigBundle } = await flakyTree(t, origin);
  flaky.behave(bigBundle, { failures: { count: 1000, status: 503 } });
  const { config, toplevel } = await replicaOfFlaky(origin, flaky, 'replica');
  // it keeps failing past --retry-for (the default waits five minutes for it to come back)
  let r = await fastPull(config, '--retry-for', '3s', '--json');
  t.is(r.code, 1);
  const report = JSON.parse(r.stdout) as PullJsonReport;
  t.regex(repoIn(report, '/pub/alpha.git')?.error?.code ?? '', /^E_(HTTP|DOWNLOAD)$/);
  t.true(report.counts.failed >= 1 && report.counts.failed <= 2, `failed ${report.counts.failed}`);
  await t.throwsAsync(stat(join(toplevel, 'pub/alpha.git')));
  await assertVerified(t, origin, toplevel, ['/pub/sub/beta.git']);
  flaky.behave(bigBundle, {}, { replace: true });
  r = await fastPull(config);
  t.is(r.code, 0, r.stderr);
  await assertVerified(t, origin, toplevel);
  t.deepEqual(await leftovers(toplevel), []);
});
