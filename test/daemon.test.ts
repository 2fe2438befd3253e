import test from 'ava';
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifestFile } from '../src/manifest/manifest.js';
import { loadPullConfig, parsePullConfig, type PullConfig } from '../src/replica/config/config.js';
import { startDaemon, type Daemon } from '../src/replica/daemon/daemon.js';
import { acquireToplevelLock } from '../src/replica/toplevel-lock.js';
import { memoryLog } from '../src/replica/log.js';
import type { PullOptions, PullReport } from '../src/replica/pull.js';
import type { PullJsonReport } from '../src/replica/pull-json.js';
import { emptyPullReport } from '../src/replica/pull-options.js';
import { runCli } from './support/cli.js';
import { eventually, startDaemonProcess } from './support/daemon.js';
import { FakeScheduler, settle } from './support/fake-scheduler.js';
import { startFlakyOrigin } from './support/flaky-origin.js';
import { fingerprintOf, replicaFor, startOrigin, writeConfig } from './support/mirror.js';
import { tempDir } from './support/repos.js';

const HOUR = 3_600_000;

/** A replica config on a temp toplevel, for daemons whose pull is faked. */
async function fakeReplica(t: import('ava').ExecutionContext, pullSection: string, extra = ''): Promise<PullConfig> {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const file = await writeConfig(dir, {
    toplevel: join(dir, 'mirror'),
    manifest: 'http://127.0.0.1:9/manifest.js.gz',
    site: 'http://127.0.0.1:9/git',
    pull: pullSection,
    extra,
  });
  return loadPullConfig(file);
}

interface Call {
  only: readonly string[] | undefined;
  scope: ((p: string) => boolean) | undefined;
  partial: boolean;
}

/** A pull that records its options and finishes when the test says so (or at once). */
function fakePull(opts: { gated?: boolean } = {}) {
  const calls: Call[] = [];
  let running = 0;
  let maxRunning = 0;
  const gates: (() => void)[] = [];
  const run = async (_config: PullConfig, o: PullOptions): Promise<PullReport> => {
    calls.push({ only: o.only, scope: o.scope, partial: !!o.partial });
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    try {
      if (opts.gated) await new Promise<void>((resolve) => gates.push(resolve));
      return emptyPullReport();
    } finally {
      running -= 1;
    }
  };
  return {
    run,
    calls,
    get maxRunning() {
      return maxRunning;
    },
    /** Lets the oldest waiting run finish. */
    release: async () => {
      gates.shift()?.();
      await settle();
    },
    get waiting() {
      return gates.length;
    },
  };
}

async function daemonWith(
  t: import('ava').ExecutionContext,
  config: PullConfig,
  runPull: (c: PullConfig, o: PullOptions) => Promise<PullReport>,
  clock: FakeScheduler,
): Promise<{ daemon: Daemon; log: string[] }> {
  const log = memoryLog();
  const daemon = await startDaemon({ config, log, scheduler: clock, runPull, listen: false });
  t.teardown(() => daemon.stop());
  await settle();
  return { daemon, log: log.lines };
}

test('the daemon pulls at start and then every [pull] refresh seconds (fake clock)', async (t) => {
  const config = await fakeReplica(t, 'refresh = 60\n');
  const clock = new FakeScheduler();
  const pull = fakePull();
  const { daemon } = await daemonWith(t, config, pull.run, clock);
  t.is(pull.calls.length, 1, 'one run at start');
  await clock.advance(59_000);
  t.is(pull.calls.length, 1, 'nothing before the interval ends');
  await clock.advance(1_000);
  t.is(pull.calls.length, 2);
  await clock.advance(10 * 60_000);
  t.is(pull.calls.length, 12, 'one run per minute');
  t.true(
    pull.calls.every((c) => c.only === undefined && c.scope === undefined && !c.partial),
    'without schedules a refresh covers everything',
  );
  await daemon.stop();
  t.is(clock.live, 0, 'no timer left after stop');
});

test('a [schedule] group is pulled only at its cron times; the refresh runs leave it alone', async (t) => {
  const config = await fakeReplica(
    t,
    'refresh = 3600\n',
    '[schedule "night"]\ncron = 30 2 * * *\ninclude = /pub/big/*\n',
  );
  t.deepEqual(config.schedules, [{ name: 'night', cron: '30 2 * * *', include: ['/pub/big/*'] }]);
  const clock = new FakeScheduler(); // 00:00
  const pull = fakePull();
  const { daemon } = await daemonWith(t, config, pull.run, clock);
  const start = pull.calls[0]!;
  t.false(start.partial);
  t.true(start.scope!('/pub/small.git'));
  t.false(start.scope!('/pub/big/linux.git'), 'the refresh leaves the group to its schedule');

  await clock.advance(2 * HOUR + 29 * 60_000); // 02:29: refreshes at 01:00 and 02:00
  t.is(pull.calls.length, 3);
  t.true(pull.calls.every((c) => !c.partial));
  await clock.advance(60_000); // 02:30
  t.is(pull.calls.length, 4);
  const night = pull.calls[3]!;
  t.true(night.partial, 'a group run is partial: it must not hide changes from the next refresh');
  t.true(night.scope!('/pub/big/linux.git'));
  t.false(night.scope!('/pub/small.git'));
  await clock.advance(24 * HOUR);
  t.is(pull.calls.filter((c) => c.partial).length, 2, 'once a day');

  // a notification for a repository of the group waits for the group's time
  const outcome = daemon.notify(['/pub/big/linux.git', '/pub/small.git'], 'test');
  t.deepEqual(outcome.accepted, ['/pub/small.git']);
  t.regex(outcome.ignored[0]!.reason, /schedule "night"/);
  await settle();
  t.deepEqual(pull.calls.at(-1)!.only, ['/pub/small.git']);
});

test('a run in progress makes the ticks that come due wait and merge: never two runs at once', async (t) => {
  const config = await fakeReplica(t, 'refresh = 60\n');
  const clock = new FakeScheduler();
  const pull = fakePull({ gated: true });
  const { daemon, log } = await daemonWith(t, config, pull.run, clock);
  t.is(pull.calls.length, 1, 'the start run is in progress');
  await clock.advance(60_000);
  await clock.advance(60_000);
  await clock.advance(60_000);
  t.is(pull.calls.length, 1, 'three ticks came due during the slow run and did not start one');
  t.true(log.some((l) => /refresh run due .* in progress: it starts when that one finishes/.test(l)));
  t.true(log.some((l) => /merged into the one already waiting/.test(l)));
  await pull.release();
  t.is(pull.calls.length, 2, 'the waiting ticks ran as one run');
  await pull.release();
  await daemon.idle();
  t.is(pull.calls.length, 2);
  t.is(pull.maxRunning, 1);
  const metrics = await daemon.renderMetrics();
  t.regex(metrics, /^bundlemirror_daemon_ticks_coalesced_total 2$/m);
  t.regex(metrics, /^bundlemirror_daemon_runs_total\{trigger="refresh"\} 2$/m);
});

test('a one-off pull holding the toplevel makes the daemon retry 15 s later instead of failing for good', async (t) => {
  // retry_for: the fake origin never answers; the run should fail fast, not retry for minutes
  const config = await fakeReplica(t, 'refresh = 3600\nretry_for = 1s\n');
  const release = await acquireToplevelLock(config.core.toplevel);
  const clock = new FakeScheduler();
  const log = memoryLog();
  const daemon = await startDaemon({ config, log, scheduler: clock, listen: false });
  t.teardown(() => daemon.stop());
  await eventually(async () => (log.lines.some((l) => /trying again in 15 s/.test(l)) ? true : undefined), {
    timeoutMs: 10_000,
  });
  t.regex(log.lines.join('\n'), new RegExp(`refresh run: .*pid ${process.pid}\\b`), 'the holder is named');
  await release();
  await clock.advance(15_000);
  await eventually(async () => (daemon.metrics.runCount('refresh') === 2 ? true : undefined), { timeoutMs: 10_000 });
  await daemon.idle();
  // the retry got past the lock, to the manifest (which this fake replica cannot reach)
  t.regex(log.lines.at(-1)!, /refresh run: GET http:\/\/127\.0\.0\.1:9\/manifest\.js\.gz/);
});

test('an invalid cron expression is a configuration error: exit 2, naming the section', async (t) => {
  const config = await fakeReplica(t, 'refresh = 60\n');
  const text = await readFile(config.file, 'utf8');
  for (const cron of ['61 2 * * *', 'at night', '0 0 30 2 *', '2030-01-01']) {
    await writeFile(config.file, `${text}\n[schedule "night"]\ncron = ${cron}\ninclude = /pub/big/*\n`);
    const r = await runCli(['pull', '-c', config.file, '--daemon']);
    t.is(r.code, 2, `${cron}: ${r.stderr}`);
    t.regex(r.stderr, /\[schedule "night"\] cron/);
  }
  await writeFile(config.file, `${text}\n[schedule night]\ncron = 0 2 * * *\ninclude = /x/*\n`);
  const r = await runCli(['pull', '-c', config.file, '--daemon']);
  t.is(r.code, 2);
  t.regex(r.stderr, /\[schedule "NAME"\]/);
});

test('contrib/bundlemirror.conf is a valid config: every key known, the daemon settings and a schedule', async (t) => {
  const text = await readFile(new URL('../contrib/bundlemirror.conf', import.meta.url), 'utf8');
  const c = parsePullConfig(text, { realpath: false });
  t.deepEqual(c.warnings, []);
  t.deepEqual(c.bundlemirror.listen, { host: '0.0.0.0', port: 8090 });
  t.is(c.bundlemirror.notifyTokenFile, '/etc/bundlemirror/notify.token');
  t.is(c.pull.refresh, 300);
  t.deepEqual(c.schedules, [{ name: 'night', cron: '0 2 * * *', include: ['/pub/big/*'] }]);
});

test('with real pulls, a schedule group is mirrored at its time and the rest at once; the local manifest keeps both', async (t) => {
  const origin = await startOrigin(t);
  const { config: file, toplevel } = await replicaFor(origin, 'replica', 'refresh = 600\n');
  await writeFile(
    file,
    (await readFile(file, 'utf8')) + '\n[schedule "night"]\ncron = 0 2 * * *\ninclude = /pub/sub/*\n',
  );
  const clock = new FakeScheduler();
  const log = memoryLog();
  const daemon = await startDaemon({ config: loadPullConfig(file), log, scheduler: clock, listen: false });
  t.teardown(() => daemon.stop());
  await daemon.idle();
  const local = async () => Object.keys(await readManifestFile(join(toplevel, 'manifest.js.gz'))).sort();
  t.deepEqual(await local(), ['/pub/alpha.git', '/pub/forks/alpha-fork.git']);
  await t.throwsAsync(stat(join(toplevel, 'pub/sub/beta.git')), undefined, 'beta waits for the night');

  await clock.advance(2 * HOUR);
  await daemon.idle();
  t.deepEqual(await local(), ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git']);
  t.is(
    await fingerprintOf(join(toplevel, 'pub/sub/beta.git')),
    await fingerprintOf(origin.repos['/pub/sub/beta.git']!.bare),
  );

  // a push to beta waits for the next night; a push to alpha arrives at the next refresh, and beta stays listed
  await origin.repos['/pub/sub/beta.git']!.wt.commit('beta change');
  await origin.repos['/pub/sub/beta.git']!.wt.push('main');
  await origin.repos['/pub/alpha.git']!.wt.commit('alpha change');
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish();
  await clock.advance(600_000);
  await daemon.idle();
  t.is(await fingerprintOf(join(toplevel, 'pub/alpha.git')), await fingerprintOf(origin.repos['/pub/alpha.git']!.bare));
  t.not(
    await fingerprintOf(join(toplevel, 'pub/sub/beta.git')),
    await fingerprintOf(origin.repos['/pub/sub/beta.git']!.bare),
  );
  t.deepEqual(await local(), ['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git']);
  await clock.advance(24 * HOUR);
  await daemon.idle();
  t.is(
    await fingerprintOf(join(toplevel, 'pub/sub/beta.git')),
    await fingerprintOf(origin.repos['/pub/sub/beta.git']!.bare),
  );
  t.false(
    log.lines.some((l) => l.startsWith('error:')),
    log.lines.join('\n'),
  );
});

test('a notified run pulls just its repository and does not hide the other changes from the next refresh', async (t) => {
  const origin = await startOrigin(t);
  const { config: file, toplevel } = await replicaFor(origin, 'replica', 'refresh = 600\n');
  const clock = new FakeScheduler();
  const log = memoryLog();
  const daemon = await startDaemon({ config: loadPullConfig(file), log, scheduler: clock, listen: false });
  t.teardown(() => daemon.stop());
  await daemon.idle();
  const fp = (p: string) => fingerprintOf(join(toplevel, p));
  const want = (p: string) => fingerprintOf(origin.repos[p]!.bare);
  for (const p of ['/pub/alpha.git', '/pub/sub/beta.git']) {
    await origin.repos[p]!.wt.commit('change');
    await origin.repos[p]!.wt.push('main');
  }
  await origin.publish();
  t.deepEqual(daemon.notify(['/pub/alpha.git'], 'test').accepted, ['/pub/alpha.git']);
  await daemon.idle();
  t.is(await fp('/pub/alpha.git'), await want('/pub/alpha.git'));
  t.not(await fp('/pub/sub/beta.git'), await want('/pub/sub/beta.git'), 'only the notified repository moved');
  await clock.advance(600_000);
  await daemon.idle();
  t.is(
    await fp('/pub/sub/beta.git'),
    await want('/pub/sub/beta.git'),
    'the refresh saw the manifest the notified run had already downloaded',
  );
  t.false(
    log.lines.some((l) => /manifest unchanged/.test(l)),
    log.lines.join('\n'),
  );
  const metrics = await daemon.renderMetrics();
  t.regex(metrics, /^bundlemirror_replica_repositories\{state="in-sync"\} 3$/m);
});

/** Serves origin.out through a test server whose bundles trickle, so a pull is still downloading when the test acts. */
async function slowTree(t: import('ava').ExecutionContext, out: string) {
  const slow = await startFlakyOrigin();
  t.teardown(() => slow.close());
  for (const rel of await readdir(out, { recursive: true })) {
    const file = join(out, rel);
    if (rel.split('/').some((p) => p.startsWith('.')) || !(await stat(file)).isFile()) continue;
    const path = '/' + rel;
    await slow.setFileFromDisk(path, file);
    if (path.endsWith('.bundle')) slow.behave(path, { chunkBytes: 8192, chunkDelayMs: 50 });
  }
  return slow;
}

test('SIGTERM during a run: the download is interrupted and keeps its partial file, nothing is recorded as failing, the locks are released, exit 143', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 150_000 });
  const slow = await slowTree(t, origin.out);
  const dir = join(origin.dir, 'r');
  const toplevel = join(dir, 'mirror');
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: slow.url('/manifest.js.gz'),
    site: `${origin.server.url}/git`,
    pull: 'refresh = 600\n',
    name: 'slow.conf',
  });
  const daemon = startDaemonProcess(t, config);
  await daemon.waitFor(/refresh run: started/);
  const partial = join(toplevel, '.bundlemirror/partial');
  const partSizes = async () => {
    const sizes = new Map<string, number>();
    for (const n of await readdir(partial).catch(() => [] as string[])) {
      const st = n.endsWith('.part') ? await stat(join(partial, n)).catch(() => null) : null; // a finished download is renamed away
      if (st) sizes.set(n, st.size);
    }
    return sizes;
  };
  // alpha's base bundle (~600 KB) trickles in 8 KiB chunks: stop once part of it is on disk
  await eventually(async () => ([...(await partSizes()).values()].some((n) => n >= 32_768) ? true : undefined));
  const exit = await daemon.stop('SIGTERM');
  t.false(exit.killed, `the daemon exited by itself:\n${daemon.stderr()}`);
  t.is(exit.code, 143, daemon.stderr());
  t.regex(daemon.stderr(), /SIGTERM: stopping/);
  t.regex(daemon.stderr(), /refresh run: interrupted/);
  t.regex(daemon.stderr(), /daemon stopped/);
  t.regex(daemon.stderr(), /interrupted; [\d.]+ MiB kept/);
  t.false(/E_GIT|internal error/.test(daemon.stderr()), daemon.stderr());
  const status = JSON.parse((await runCli(['status', '-c', config, '--json', '--no-size'])).stdout) as {
    counts: Record<string, number>;
  };
  t.is(status.counts.failing, 0, 'an interruption is not a failure');
  const partials = [...(await partSizes()).values()];
  const kept = partials.find((n) => n >= 32_768);
  t.truthy(kept, 'the partial download survives for the next start');
  const left = await readdir(join(toplevel, '.bundlemirror'));
  t.false(left.includes('pull.lock'), 'pull lock released');
  t.false(left.includes('daemon.lock'), 'daemon lock released');
  // the next pull finds the toplevel free and resumes from the byte where the daemon stopped
  const again = await runCli(['pull', '-c', config, '--json'], { timeoutMs: 90_000 });
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { counts: { failed: 0 } });
  for (const [path, repo] of Object.entries(origin.repos))
    t.is(await fingerprintOf(join(toplevel, path)), await fingerprintOf(repo.bare), path);
  // every kept byte is resumed, none downloaded again
  t.is(
    (JSON.parse(again.stdout) as PullJsonReport).bytes.resumed,
    partials.reduce((a, b) => a + b, 0),
  );
});

test('SIGHUP reloads the config; an invalid new config is refused and the old one kept; a second daemon is refused', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin, 'replica', 'include = /pub/alpha.git\nrefresh = 600\n');
  const daemon = startDaemonProcess(t, config);
  await daemon.waitFor(/refresh run: cloned 1, /);
  const good = await readFile(config, 'utf8');

  const second = await runCli(['pull', '-c', config, '--daemon']);
  t.is(second.code, 2, second.stderr);
  t.regex(second.stderr, /another bundlemirror pull --daemon/);

  let from = daemon.stderr().length;
  await writeFile(config, good.replace('refresh = 600', 'refresh = soon'));
  daemon.signal('SIGHUP');
  await daemon.waitFor(/reload failed, keeping the previous configuration: .*refresh/, { from });

  from = daemon.stderr().length;
  await writeFile(
    config,
    good.replace('include = /pub/alpha.git', 'include = /pub/*').replace('refresh = 600', 'refresh = 1'),
  );
  daemon.signal('SIGHUP');
  await daemon.waitFor(/reloaded /, { from });
  await daemon.waitFor(/refresh run: cloned 2, /, { from });
  t.is(
    await fingerprintOf(join(toplevel, 'pub/sub/beta.git')),
    await fingerprintOf(origin.repos['/pub/sub/beta.git']!.bare),
  );
  const exit = await daemon.stop('SIGINT');
  t.false(exit.killed);
  // with refresh = 1 a run may be in progress: cutting it short is an interruption (130), stopping between runs is 0
  t.true(exit.code === 0 || exit.code === 130, daemon.stderr());
});

test('SIGHUP after a log rotation: the daemon writes to a new file of the [core] log name, not to the moved one', async (t) => {
  const origin = await startOrigin(t);
  const { config } = await replicaFor(origin, 'replica', 'include = /pub/alpha.git\nrefresh = 600\n');
  const logFile = join(origin.dir, 'pull.log');
  const daemon = startDaemonProcess(t, config);
  await daemon.waitFor(/refresh run: cloned 1, /);
  await eventually(async () =>
    (await readFile(logFile, 'utf8').catch(() => '')).includes('refresh run') ? true : undefined,
  );
  await rename(logFile, `${logFile}.1`); // what logrotate does before it signals
  const from = daemon.stderr().length;
  daemon.signal('SIGHUP');
  await daemon.waitFor(/reloaded /, { from });
  const fresh = await eventually(async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text.includes('reloaded') ? text : undefined;
  });
  t.true(
    fresh
      .split('\n')
      .filter(Boolean)
      .every((l) => JSON.parse(l).pid > 0),
    'JSON lines in the new file',
  );
  t.false((await readFile(`${logFile}.1`, 'utf8')).includes('reloaded'), 'nothing more went to the rotated file');
  const exit = await daemon.stop('SIGTERM');
  t.false(exit.killed);
});
