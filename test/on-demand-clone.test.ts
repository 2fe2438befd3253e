import test from 'ava';
import { spawn } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer } from '../src/server/server.js';
import { writeConfig } from './support/mirror.js';
import { showRefOf } from './support/repos.js';
import { gitText } from '../src/git/exec.js';
import { largeRepo } from '../bench/lib/data.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { BIN, runCli } from './support/cli.js';
import { repoIn } from './support/reports.js';
import { ask, startService, startUpstreams, waitForJob } from './support/on-demand.js';

const LOCAL = ['git://127.0.0.1:*/*', 'http://127.0.0.1:*/*'];

const refsOf = (args: { gitDir?: string; cwd?: string }, ...prefixes: string[]) =>
  gitText(['for-each-ref', '--format=%(objectname) %(refname)', ...prefixes], args);

/** The clone's view of the upstream: origin/<branch> as refs/heads/<branch>, tags as they are. */
async function cloneRefsAsUpstream(dir: string): Promise<string> {
  const lines = (await refsOf({ cwd: dir }, 'refs/remotes/origin', 'refs/tags'))
    .split('\n')
    .filter((l) => l && !l.endsWith(' refs/remotes/origin/HEAD'))
    .map((l) => l.replace(' refs/remotes/origin/', ' refs/heads/'));
  return lines.sort().join('\n');
}

test('clone --via a 50 MB upstream through a link cut every 1 MiB: one command, bytes on the wire within 5% of the bundle, refs and origin right', async (t) => {
  const up = await startUpstreams(t, {
    http: false,
    setup: async (toplevel) => {
      await largeRepo(join(toplevel, 'pub/big.git'), {
        commits: 200,
        meanBlobBytes: 256 * 1024,
        tagEvery: 20,
        branches: 2,
        branchCommits: 3,
        seed: 'on-demand',
      });
    },
  });
  const { server, dir } = await startService(t, { allow: LOCAL });
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: server.port }, cutAfterBytes: 1 << 20 });
  t.teardown(() => proxy.close());
  const upstream = up.gitUrl('pub/big.git');
  const work = join(dir, 'work');

  const r = await runCli(['clone', '--no-progress', '--via', proxy.url(''), upstream, work]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /then fetched from origin/);

  const job = await ask(server.url, upstream, 'GET');
  const bundleBytes = (job.body.bundles as { size: number }[]).reduce((s, b) => s + b.size, 0);
  t.true(bundleBytes > 45e6, `bundle of ${bundleBytes} bytes`);
  t.true(proxy.stats.cuts >= 40, `${proxy.stats.cuts} cuts`);
  const ratio = proxy.stats.bytesDownstream / bundleBytes;
  t.log(
    `bundle ${bundleBytes} B, on the wire ${proxy.stats.bytesDownstream} B (${ratio.toFixed(4)}x), ${proxy.stats.cuts} cuts`,
  );
  t.true(ratio <= 1.05, `${ratio}x`);

  const bare = join(up.toplevel, 'pub/big.git');
  t.is(
    await cloneRefsAsUpstream(work),
    (await refsOf({ gitDir: bare }, 'refs/heads', 'refs/tags')).split('\n').sort().join('\n'),
  );
  t.is(
    await gitText(['config', 'remote.origin.url'], { cwd: work }),
    upstream,
    'origin is the upstream, not the service',
  );
  t.is(await gitText(['rev-parse', '--abbrev-ref', 'HEAD'], { cwd: work }), 'main');
  t.is(await gitText(['status', '--porcelain'], { cwd: work }), '');
});

test('clone --via keeps the clone from the bundle when the upstream is unreachable from the client', async (t) => {
  const up = await startUpstreams(t, { http: false });
  const { server, dir } = await startService(t, { allow: LOCAL });
  const upstream = up.gitUrl('pub/alpha.git');
  await ask(server.url, upstream);
  t.is((await waitForJob(server.url, upstream)).body.state, 'ready');
  const expected = (await refsOf({ gitDir: up.repos['pub/alpha.git']!.bare }, 'refs/heads', 'refs/tags'))
    .split('\n')
    .sort()
    .join('\n');
  await up.stopDaemon();

  const work = join(dir, 'work');
  const r = await runCli(['clone', '--no-progress', '--via', server.url, upstream, work]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /unreachable/);
  t.is(await cloneRefsAsUpstream(work), expected);
  t.is(await gitText(['config', 'remote.origin.url'], { cwd: work }), upstream);
});

test('clone --via reports the service refusal with its code and exit status 1', async (t) => {
  const { server, dir } = await startService(t, { allow: ['https://example.org/*'] });
  const r = await runCli(['clone', '--no-progress', '--via', server.url, 'file:///etc', join(dir, 'work')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /\[E_URL_SCHEME\]/);
});

test('pull with [remote] on_demand clones a repository its grokmirror-style origin has no bundles for through the service', async (t) => {
  const up = await startUpstreams(t, { http: false });
  const { server, service, dir } = await startService(t, { allow: LOCAL });
  // a grokmirror origin: a manifest, git daemon, no index.json or bundles
  const tree = join(dir, 'grok');
  const r0 = await runCli(['publish', '--quiet', '--toplevel', up.toplevel, '--out', tree]);
  t.is(r0.code, 0, r0.stderr);
  await rm(join(tree, 'pub'), { recursive: true });
  const origin = await startServer({ bundles: tree, port: 0, log: false });
  t.teardown(() => origin.close());
  const toplevel = join(dir, 'replica');
  const config = await writeConfig(dir, {
    toplevel,
    manifest: `${origin.url}/manifest.js.gz`,
    site: `git://127.0.0.1:${up.daemonPort}`,
  });
  await writeFile(
    config,
    (await readFile(config, 'utf8')).replace('\n[pull]', `\non_demand = ${server.url}\n\n[pull]`),
  );
  const r = await runCli(['pull', '-c', config, '--json']);
  t.is(r.code, 0, r.stderr);
  t.is(service.counters.clones, 1, 'the service cloned it');
  t.is(await showRefOf(join(toplevel, 'pub/alpha.git')), await showRefOf(up.repos['pub/alpha.git']!.bare));
  t.like(repoIn(JSON.parse(r.stdout), '/pub/alpha.git'), { action: 'cloned', via: 'bundles' });
});

test('clone --via interrupted with Ctrl-C continues where it stopped when run again', async (t) => {
  const up = await startUpstreams(t, { http: false, bigBytes: 400_000 });
  const { server, dir } = await startService(t, { allow: LOCAL });
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: server.port }, stallAfterBytes: 600_000 });
  t.teardown(() => proxy.close());
  const upstream = up.gitUrl('pub/alpha.git');
  const work = join(dir, 'work');
  const child = spawn(process.execPath, [BIN, 'clone', '--no-progress', '--via', proxy.url(''), upstream, work], {
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
  const partialDir = join(work, '.git/bundlemirror/partial');
  for (let i = 0; i < 300; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const names = await readdir(partialDir).catch(() => [] as string[]);
    const part = names.find((n) => n.endsWith('.part'));
    if (part && proxy.stats.stalls > 0 && (await stat(join(partialDir, part))).size > 100_000) break;
  }
  child.kill('SIGINT');
  t.is(await exited, 130);
  proxy.configure({});
  const r = await runCli(['clone', '--no-progress', '--via', proxy.url(''), upstream, work]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /resumed [1-9]/);
  t.is(await gitText(['config', 'remote.origin.url'], { cwd: work }), upstream);
});
