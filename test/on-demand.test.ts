import test from 'ava';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gitText } from '../src/git/exec.js';
import { parseManifest } from '../src/manifest/manifest.js';
import { parseRepoIndex } from '../src/manifest/repo-index.js';
import { UrlPolicy, isPrivateAddress } from '../src/on-demand/url-policy.js';
import { OnDemandService } from '../src/on-demand/service.js';
import { parseGitProgress } from '../src/git/upstream.js';
import { isBundlemirrorError } from '../src/errors.js';
import { pushCommit } from '../bench/lib/data.js';
import { ask, startService, startUpstreams, waitForJob } from './support/on-demand.js';
import { makeRepo } from './support/repos.js';

const LOCAL = ['http://127.0.0.1:*/*', 'git://127.0.0.1:*/*'];

/** A resolver for names that must never reach DNS from a test. */
const fakeDns = async (host: string) => {
  if (host === 'public.example') return ['93.184.216.34'];
  if (host === 'sneaky.example') return ['127.0.0.1'];
  if (host === 'mixed.example') return ['93.184.216.34', '10.1.2.3'];
  throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
};

async function refusal(policy: UrlPolicy, url: string): Promise<string> {
  try {
    await policy.admit(url);
  } catch (err) {
    if (isBundlemirrorError(err)) return err.code;
    throw err;
  }
  return 'admitted';
}

test('the URL rules: each refusal names its rule', async (t) => {
  const policy = new UrlPolicy(
    ['https://public.example/*', 'https://sneaky.example/*', 'https://mixed.example/*', 'git://*.example/pub/*'],
    fakeDns,
  );
  t.is(await refusal(policy, 'https://public.example/a/b.git'), 'admitted');
  t.is(await refusal(policy, 'https://other.example/a.git'), 'E_URL_NOT_ALLOWED');
  t.is(await refusal(policy, 'file:///etc/passwd'), 'E_URL_SCHEME');
  t.is(await refusal(policy, 'ext::sh -c touch% /tmp/pwned'), 'E_URL_SCHEME');
  t.is(await refusal(policy, 'ssh://public.example/a.git'), 'E_URL_SCHEME');
  t.is(await refusal(policy, 'public.example:a.git'), 'E_URL_SCHEME');
  t.is(await refusal(policy, 'https://user:secret@public.example/a.git'), 'E_URL_USERINFO');
  t.is(await refusal(policy, 'https://token@public.example/a.git'), 'E_URL_USERINFO');
  t.is(
    await refusal(policy, 'https://sneaky.example/a.git'),
    'E_URL_ADDRESS',
    'a public pattern whose host resolves to 127.0.0.1',
  );
  t.is(
    await refusal(policy, 'https://mixed.example/a.git'),
    'E_URL_ADDRESS',
    'one private address among public ones is enough',
  );
  t.is(
    await refusal(policy, 'https://public.example:8443/a.git'),
    'E_URL_NOT_ALLOWED',
    'no port in the pattern: the default port only',
  );
  t.is(await refusal(policy, 'https://public.example/a.git?x=1'), 'E_URL_INVALID');
  t.is(await refusal(policy, 'https://public.example/.hidden/a.git'), 'E_URL_INVALID');
  t.is(await refusal(policy, 'git://public.example/pub/x.git'), 'admitted');
  t.is(
    await refusal(policy, 'git://evil.com/x.example/pub/x.git'),
    'E_URL_NOT_ALLOWED',
    'a host * never crosses a dot or slash',
  );
  t.is(await refusal(policy, 'http://127.0.0.1/a.git'), 'E_URL_NOT_ALLOWED');
  const local = new UrlPolicy(['http://127.0.0.1:*/*'], fakeDns);
  t.is(await refusal(local, 'http://127.0.0.1:8080/a.git'), 'admitted', 'a pattern naming the address allows it');
  t.is(await refusal(local, 'http://[::ffff:127.0.0.1]:8080/a.git'), 'E_URL_NOT_ALLOWED');
  for (const a of [
    '127.0.0.1',
    '10.0.0.1',
    '169.254.169.254',
    '::1',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:a9fe:a9fe',
    '0.0.0.0',
  ]) {
    t.true(isPrivateAddress(a), a);
  }
  t.false(isPrivateAddress('93.184.216.34'));
  t.false(isPrivateAddress('2606:2800:220:1:248:1893:25c8:1946'));
});

test('refusals over HTTP are 4xx JSON with the rule code, and leave no job', async (t) => {
  const { server, service } = await startService(t, { allow: ['http://localhost:*/*', 'http://127.0.0.1:1/*'] });
  const cases: [string, number, string][] = [
    ['https://example.org/x.git', 403, 'E_URL_NOT_ALLOWED'],
    ['file:///srv/git/x.git', 400, 'E_URL_SCHEME'],
    ['ext::sh -c id', 400, 'E_URL_SCHEME'],
    ['http://me:pw@127.0.0.1:1/x.git', 400, 'E_URL_USERINFO'],
    // localhost really resolves to a loopback address; only a pattern naming that address may allow it
    ['http://localhost:9/x.git', 403, 'E_URL_ADDRESS'],
  ];
  for (const [url, status, code] of cases) {
    const a = await ask(server.url, url);
    t.is(a.status, status, url);
    t.is(a.body.error?.code, code, url);
  }
  t.is(service.counters.clones, 0);
  const bad = await fetch(`${server.url}/api/on-demand`, { method: 'POST', body: 'not json' });
  t.is(bad.status, 400);
  t.is(((await bad.json()) as { error: { code: string } }).error.code, 'E_USAGE');
});

test('a git:// upstream becomes a published mirror that stock git clone --bundle-uri uses; ten requests share one clone', async (t) => {
  const up = await startUpstreams(t);
  const { server, service, dir } = await startService(t, { allow: LOCAL });
  const url = up.gitUrl('pub/alpha.git');
  const first = await Promise.all(Array.from({ length: 10 }, () => ask(server.url, url)));
  for (const a of first) t.true(a.status === 202 || a.status === 200);
  t.truthy(first.find((a) => a.status === 202)?.retryAfter);
  const done = await waitForJob(server.url, url);
  t.is(done.status, 200, JSON.stringify(done.body));
  t.is(done.body.state, 'ready');
  t.is(service.counters.clones, 1, 'one clone for ten requests');
  t.is(done.body.path, `/127.0.0.1:${up.daemonPort}/pub/alpha.git`);
  for (const key of ['bundleList', 'index'])
    t.true(String(done.body[key]).startsWith(`${server.url}/on-demand/127.0.0.1:${up.daemonPort}/pub/alpha.git/`));
  t.is(done.body.bundles.length, 1);

  // the mirror is a bare repository at /<host>/<path>.git in the cache, with the upstream's refs
  const mirror = join(dir, 'cache', `127.0.0.1:${up.daemonPort}`, 'pub/alpha.git');
  const refsOf = (args: { gitDir?: string; cwd?: string }, prefix = 'refs/heads refs/tags') =>
    gitText(['for-each-ref', '--format=%(objectname) %(refname)', ...prefix.split(' ')], args);
  t.is(await refsOf({ gitDir: mirror }), await refsOf({ gitDir: up.repos['pub/alpha.git']!.bare }));

  // stock git: the bundle list gives the objects, the upstream the rest
  const clone = join(dir, 'stock');
  await gitText(['clone', '--quiet', `--bundle-uri=${done.body.bundleList}`, url, clone]);
  t.is(
    await gitText(['rev-parse', 'refs/remotes/origin/main'], { cwd: clone }),
    await gitText(['rev-parse', 'main'], { gitDir: up.repos['pub/alpha.git']!.bare }),
  );
  t.true((await gitText(['for-each-ref', 'refs/bundles'], { cwd: clone })).length > 0, 'objects came from the bundle');
  const manifest = parseManifest(await readFile(join(dir, 'cache/.bundlemirror/published/manifest.js.gz'))).manifest;
  t.deepEqual(Object.keys(manifest), [done.body.path]);
  const served = await fetch(`${server.url}/on-demand/manifest.js.gz`);
  t.is(served.status, 200);
});

test('a request after a push and the TTL refreshes the mirror into an incremental bundle', async (t) => {
  const up = await startUpstreams(t, { http: false, bigBytes: 50_000 });
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const { server, service, dir } = await startService(t, { allow: LOCAL, ttlMs: 3600_000, now: () => clock });
  const url = up.gitUrl('pub/alpha.git');
  await ask(server.url, url);
  const first = await waitForJob(server.url, url);
  t.is(first.body.state, 'ready');
  const tip = await pushCommit(up.repos['pub/alpha.git']!.bare, { seed: 'ttl', bytes: 20_000 });

  clock += 10 * 60_000; // within the TTL: the same bundles, no git process
  const within = await ask(server.url, url);
  t.is(within.status, 200);
  t.is(service.counters.fetches, 0);

  clock += 3600_000;
  const again = await ask(server.url, url);
  t.is(again.status, 202);
  t.true(again.body.refresh);
  const refreshed = await waitForJob(server.url, url);
  t.is(refreshed.body.state, 'ready');
  t.is(service.counters.clones, 1);
  t.is(service.counters.fetches, 1);
  t.is(refreshed.body.bundles.length, 2);
  t.is(refreshed.body.bundles[0].sha256, first.body.bundles[0].sha256, 'the first bundle is still the base');
  const index = parseRepoIndex(
    await readFile(join(dir, 'cache/.bundlemirror/published', first.body.path.slice(1), 'index.json')),
    first.body.path,
  );
  const incremental = index.bundles[1]!;
  t.true(incremental.prerequisites.length > 0, 'the new bundle builds on the first');
  t.true(incremental.size < 30_000, 'it holds the push, not the history');
  t.is(index.refs['refs/heads/main'], tip);
});

test('redirects are followed only to URLs the rules allow', async (t) => {
  const up = await startUpstreams(t);
  const { server, service } = await startService(t, { allow: ['http://127.0.0.1:*/*', 'http://localhost:*/*'] });
  const target = up.httpUrl('pub/alpha.git');
  const redirector = createServer((req, res) => {
    const rest = (req.url ?? '').replace(/^\/(good|bad)\/alpha\.git/, '');
    const to = req.url?.startsWith('/good')
      ? `${target}${rest}`
      : `http://localhost:${up.http!.port}/git/pub/alpha.git${rest}`;
    res.writeHead(301, { location: to }).end();
  });
  await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => redirector.close(() => r())));
  const port = (redirector.address() as AddressInfo).port;

  const bad = `http://127.0.0.1:${port}/bad/alpha.git`;
  await ask(server.url, bad);
  const refused = await waitForJob(server.url, bad);
  t.is(refused.status, 403);
  t.is(refused.body.state, 'failed');
  t.is(refused.body.error.code, 'E_URL_REDIRECT');
  t.is(service.counters.clones, 0, 'git never ran');

  const good = `http://127.0.0.1:${port}/good/alpha.git`;
  await ask(server.url, good);
  const followed = await waitForJob(server.url, good);
  t.is(followed.body.state, 'ready', JSON.stringify(followed.body.error));
  t.is(followed.body.path, `/127.0.0.1:${port}/good/alpha.git`, 'the mirror is named after the URL asked for');
});

test('an upstream larger than the size limit is refused and leaves nothing in the cache', async (t) => {
  const up = await startUpstreams(t, { bigBytes: 200_000, http: false });
  const { server, dir } = await startService(t, { allow: LOCAL, maxRepoBytes: 300_000 });
  const url = up.gitUrl('pub/alpha.git');
  await ask(server.url, url);
  const a = await waitForJob(server.url, url);
  t.is(a.status, 413);
  t.is(a.body.error.code, 'E_REPO_TOO_LARGE');
  t.deepEqual(
    (await readdir(join(dir, 'cache'))).filter((n) => n !== '.bundlemirror'),
    [],
  );
  t.deepEqual(await readdir(join(dir, 'cache/.bundlemirror/tmp')), []);
  const published = (await readdir(join(dir, 'cache/.bundlemirror/published'))).filter(
    (n) => !n.startsWith('.') && n !== 'manifest.js.gz',
  );
  t.deepEqual(published, []);
});

test('the cache keeps to its size by evicting the least recently requested mirror', async (t) => {
  const up = await startUpstreams(t, {
    bigBytes: 100_000,
    http: false,
    setup: async (toplevel, dir) => {
      await makeRepo(dir, toplevel, 'pub/beta.git', { commits: 2 });
    },
  });
  const { server, service, dir } = await startService(t, { allow: LOCAL, maxCacheBytes: 300_000 });
  const alpha = up.gitUrl('pub/alpha.git');
  const beta = up.gitUrl('pub/beta.git');
  await ask(server.url, alpha);
  t.is((await waitForJob(server.url, alpha)).body.state, 'ready');
  t.is(service.counters.evictions, 0, 'the mirror just made stays even above the limit');
  await ask(server.url, beta);
  t.is((await waitForJob(server.url, beta)).body.state, 'ready');
  t.is(service.counters.evictions, 1);
  t.is((await ask(server.url, alpha, 'GET')).status, 404, 'alpha was evicted');
  t.deepEqual(await readdir(join(dir, 'cache', `127.0.0.1:${up.daemonPort}`, 'pub')), ['beta.git']);
  const manifest = parseManifest(await readFile(join(dir, 'cache/.bundlemirror/published/manifest.js.gz'))).manifest;
  t.deepEqual(Object.keys(manifest), [`/127.0.0.1:${up.daemonPort}/pub/beta.git`]);
});

test('the /on-demand page, in headless Chromium, shows a ready job with the commands to run', async (t) => {
  const up = await startUpstreams(t, { http: false });
  const { server, dir } = await startService(t, { allow: LOCAL });
  const url = up.gitUrl('pub/alpha.git');
  await ask(server.url, url);
  const ready = await waitForJob(server.url, url);
  t.is(ready.body.state, 'ready');
  const page = `${server.url}/on-demand?url=${encodeURIComponent(url)}`;
  const dom = await runChromium(['--dump-dom', '--virtual-time-budget=10000', page], dir);
  t.regex(dom, /<span id="state">ready<\/span>/);
  t.true(dom.includes(`bundlemirror clone --via ${server.url} ${url} alpha`));
  t.true(dom.includes(`git clone --bundle-uri=${ready.body.bundleList} ${url} alpha`));
  t.true(dom.includes(`href="${ready.body.bundles[0].url}"`));
  const shot = join(dir, 'page.png');
  await runChromium([`--screenshot=${shot}`, '--window-size=1000,700', '--virtual-time-budget=10000', page], dir);
  t.true((await stat(shot)).size > 1000, 'a screenshot was written');
});

/** Real Chromium, headless, with a throwaway profile; bounded in time. */
function runChromium(args: string[], dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'chromium',
      ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${join(dir, 'chromium')}`, ...args],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

test('jobs beyond --on-demand-jobs wait as queued, then run', async (t) => {
  const up = await startUpstreams(t, {
    http: false,
    setup: async (toplevel, dir) => {
      await makeRepo(dir, toplevel, 'pub/beta.git', { commits: 2 });
    },
  });
  const { server, service } = await startService(t, { allow: LOCAL, maxJobs: 1 });
  const alpha = up.gitUrl('pub/alpha.git');
  const beta = up.gitUrl('pub/beta.git');
  const [a, b] = await Promise.all([ask(server.url, alpha), ask(server.url, beta)]);
  t.is(a.status, 202);
  t.is(b.status, 202);
  // one of them holds the only slot; the other waits for it
  t.true([a.body.state, b.body.state].includes('queued'));
  t.is((await waitForJob(server.url, alpha)).body.state, 'ready');
  t.is((await waitForJob(server.url, beta)).body.state, 'ready');
  t.is(service.counters.clones, 2);
});

test('a restarted service knows the mirrors it holds and serves them without cloning again', async (t) => {
  const up = await startUpstreams(t, { http: false });
  const first = await startService(t, { allow: LOCAL });
  const url = up.gitUrl('pub/alpha.git');
  await ask(first.server.url, url);
  const ready = await waitForJob(first.server.url, url);
  t.is(ready.body.state, 'ready');
  await first.server.close();
  await first.service.close();
  const again = await OnDemandService.open({ dir: join(first.dir, 'cache'), allow: LOCAL });
  t.teardown(() => again.close());
  const job = await again.request(url);
  t.is(job.state, 'ready');
  t.deepEqual(
    job.bundles?.map((b) => b.sha256),
    ready.body.bundles.map((b: { sha256: string }) => b.sha256),
  );
  t.is(again.counters.clones, 0);
});

test("git's progress lines become job progress", (t) => {
  t.deepEqual(
    parseGitProgress(
      'remote: Counting objects: 100% (12/12), done.\r\nReceiving objects:  45% (123/273), 1.50 MiB | 2.00 MiB/s\r',
    ),
    {
      phase: 'Receiving objects',
      percent: 45,
      done: 123,
      total: 273,
      bytes: 1572864,
    },
  );
  t.deepEqual(parseGitProgress('Resolving deltas:  10% (1/10)\r'), {
    phase: 'Resolving deltas',
    percent: 10,
    done: 1,
    total: 10,
    bytes: null,
  });
  t.deepEqual(parseGitProgress('remote: Enumerating objects: 42, done.\n'), {
    phase: 'Enumerating objects',
    percent: null,
    done: 42,
    total: null,
    bytes: null,
  });
  t.is(parseGitProgress('fatal: repository not found\n'), null);
});

test('a refresh that fails keeps serving the mirror it had, with the error', async (t) => {
  const up = await startUpstreams(t, { http: false });
  let clock = Date.parse('2026-11-01T00:00:00Z');
  const { server, service } = await startService(t, { allow: LOCAL, ttlMs: 60_000, now: () => clock });
  const url = up.gitUrl('pub/alpha.git');
  await ask(server.url, url);
  const first = await waitForJob(server.url, url);
  t.is(first.body.state, 'ready');
  await up.stopDaemon();
  clock += 120_000;
  t.is((await ask(server.url, url)).status, 202);
  const after = await waitForJob(server.url, url);
  t.is(after.status, 200);
  t.is(after.body.state, 'ready');
  t.is(after.body.error?.code, 'E_UPSTREAM');
  t.deepEqual(after.body.bundles, first.body.bundles);
  // not retried at once: the next request within the pause answers from the cache
  t.is((await ask(server.url, url)).status, 200);
  t.is(service.counters.fetches, 1);
});
