import test, { type ExecutionContext } from 'ava';
import { chmod, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startServer } from '../src/server/server.js';
import { BIN, runCli } from './support/cli.js';
import { startDaemonProcess, type DaemonProcess } from './support/daemon.js';
import { request } from './support/http.js';
import { fingerprintOf, startOrigin, writeConfig, type Origin } from './support/mirror.js';
import { parsePrometheus } from './support/prometheus.js';

const TOKEN = 'test-token-0123456789abcdef';

interface NotifiedReplica {
  daemon: DaemonProcess;
  /** `http://127.0.0.1:PORT` of the daemon's listener ('' when it has none). */
  url: string;
  toplevel: string;
  tokenFile: string;
}

/** A replica daemon on the origin, listening for notifications; resolves once its first run cloned everything. */
async function notifiedReplica(
  t: ExecutionContext,
  origin: Origin,
  opts: { pull?: string; listen?: boolean } = {},
): Promise<NotifiedReplica> {
  const tokenFile = join(origin.dir, 'notify.token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const toplevel = join(origin.dir, 'replica');
  const listen = opts.listen === false ? '' : `listen = 127.0.0.1:0\nnotify_token_file = ${tokenFile}\n`;
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: `${origin.server.url}/manifest.js.gz`,
    site: `${origin.server.url}/git`,
    pull: `refresh = 3600\n${opts.pull ?? ''}`,
    extra: `[bundlemirror]\n${listen}`,
  });
  const daemon = startDaemonProcess(t, config);
  const url = opts.listen === false ? '' : (await daemon.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  await daemon.waitFor(/refresh run: cloned 3, updated 0, unchanged 0, failed 0/);
  return { daemon, url, toplevel, tokenFile };
}

async function postReceiveHook(bare: string, script: string): Promise<void> {
  const hook = join(bare, 'hooks', 'post-receive');
  await writeFile(hook, `#!/bin/sh\n${script}\n`);
  await chmod(hook, 0o755);
}

test('a push at the origin reaches a verified replica: the post-receive hook publishes with --notify, the daemon pulls that repository', async (t) => {
  const origin = await startOrigin(t);
  const r = await notifiedReplica(t, origin);
  const alpha = origin.repos['/pub/alpha.git']!;
  await postReceiveHook(
    alpha.bare,
    `exec "${process.execPath}" "${BIN}" publish --quiet --toplevel "${origin.toplevel}" --out "${origin.out}" --notify "${r.url}/notify" --notify-token-file "${r.tokenFile}" "$PWD"`,
  );
  const timings: string[] = [];
  for (let i = 1; i <= 3; i++) {
    await alpha.wt.commit(`push ${i}`);
    const from = r.daemon.stderr().length;
    const t0 = performance.now();
    await alpha.wt.push('main'); // returns once the post-receive hook (publish + notify) is done
    const hookDone = performance.now();
    await r.daemon.waitFor(/\/pub\/alpha\.git: updated via \S+.*fingerprint [0-9a-f]{12} verified/, {
      from,
      timeoutMs: 30_000,
    });
    const verified = performance.now();
    timings.push(
      `push ${i}: ${Math.round(verified - t0)} ms from git push to verified replica (git push with its post-receive hook ${Math.round(hookDone - t0)} ms, replica pull ${Math.round(verified - hookDone)} ms)`,
    );
    t.is(
      await fingerprintOf(join(r.toplevel, 'pub/alpha.git')),
      await fingerprintOf(alpha.bare),
      `push ${i}: fingerprints equal`,
    );
    await r.daemon.waitFor(/notified run of \/pub\/alpha\.git: cloned 0, updated 1, unchanged 0, failed 0/, { from });
  }
  for (const line of timings) t.log(line);
  t.is(r.daemon.stderr().match(/refresh run: started/g)?.length, 1, 'no refresh run was involved but the first');
  const exit = await r.daemon.stop();
  t.is(exit.code, 0);
});

test('a notification without the right token gets 401 and pulls nothing; malformed ones get 400, 405 or 413', async (t) => {
  const origin = await startOrigin(t);
  const r = await notifiedReplica(t, origin, { pull: 'include = /pub/*\n' });
  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('unannounced');
  await alpha.wt.push('main');
  await origin.publish();
  const before = await fingerprintOf(join(r.toplevel, 'pub/alpha.git'));
  const body = JSON.stringify({ repos: ['/pub/alpha.git'] });
  const post = (b: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
    request(r.url, '/notify', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: b });

  const wrong = await post(body, { authorization: 'Bearer test-token-0123456789abcdeX' });
  t.is(wrong.status, 401);
  t.is(wrong.headers['www-authenticate'], 'Bearer realm="bundlemirror"');
  t.is((await post(body, {})).status, 401, 'no Authorization header');
  t.is(
    (await post(body, { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` })).status,
    401,
    'not a bearer token',
  );
  t.is((await post(JSON.stringify({ repos: ['/pub/../etc/passwd'] }))).status, 400);
  t.is((await post(JSON.stringify({ repos: ['-/x.git'] }))).status, 400);
  t.is((await post(JSON.stringify({ repos: [] }))).status, 400);
  t.is((await post('not json')).status, 400);
  t.is(
    (await post(JSON.stringify({ repos: Array.from({ length: 900 }, (_, i) => `/pub/${'x'.repeat(80)}-${i}.git`) })))
      .status,
    413,
    'body over 64 KiB',
  );
  t.is((await request(r.url, '/notify')).status, 405);
  t.is((await request(r.url, '/elsewhere')).status, 404);

  const m = parsePrometheus((await request(r.url, '/metrics')).body.toString());
  t.is(m.value('bundlemirror_daemon_notifications_total', { result: 'unauthorized' }), 3);
  t.is(m.value('bundlemirror_daemon_notifications_total', { result: 'invalid' }), 5);
  t.is(m.value('bundlemirror_daemon_notifications_total', { result: 'accepted' }), 0);
  t.is(m.value('bundlemirror_daemon_runs_total', { trigger: 'notify' }), 0, 'nothing was pulled');
  t.is(await fingerprintOf(join(r.toplevel, 'pub/alpha.git')), before, 'the replica did not move');

  // the right token, and a path this replica does not mirror
  const from = r.daemon.stderr().length;
  const ok = await post(JSON.stringify({ repos: ['/pub/alpha.git', '/other/x.git'] }));
  t.is(ok.status, 202);
  const outcome = JSON.parse(ok.body.toString()) as { accepted: string[]; ignored: { path: string; reason: string }[] };
  t.deepEqual(outcome.accepted, ['/pub/alpha.git']);
  t.deepEqual(
    outcome.ignored.map((i) => i.path),
    ['/other/x.git'],
  );
  await r.daemon.waitFor(/notified run of \/pub\/alpha\.git: cloned 0, updated 1/, { from });
  t.is(await fingerprintOf(join(r.toplevel, 'pub/alpha.git')), await fingerprintOf(alpha.bare));
});

test("grokmirror's UNIX socket: repository paths, one per line, are pulled at once", async (t) => {
  const origin = await startOrigin(t);
  const socket = join(origin.dir, 'grok.sock');
  const r = await notifiedReplica(t, origin, { pull: `socket = ${socket}\nsocket_group = nogroup\n`, listen: false });
  await r.daemon.waitFor(/listening on socket /);
  const st = await stat(socket);
  t.is(st.mode & 0o777, 0o660, 'group-writable by default: the origin hook runs as another user');
  t.is(st.gid, 65534, '[pull] socket_group');
  const beta = origin.repos['/pub/sub/beta.git']!;
  await beta.wt.commit('for the socket');
  await beta.wt.push('main');
  await origin.publish();
  const from = r.daemon.stderr().length;
  await new Promise<void>((resolve, reject) => {
    const c = connect(socket, () => c.end('/pub/sub/beta.git\n\n'));
    c.on('error', reject);
    c.on('close', () => resolve());
    c.resume();
  });
  await r.daemon.waitFor(/notified run of \/pub\/sub\/beta\.git: cloned 0, updated 1, unchanged 0, failed 0/, { from });
  t.is(await fingerprintOf(join(r.toplevel, 'pub/sub/beta.git')), await fingerprintOf(beta.bare));

  // a malformed path ends the conversation and pulls nothing
  await new Promise<void>((resolve) => {
    const c = connect(socket, () => c.end('../../etc\n/pub/alpha.git\n'));
    c.on('close', () => resolve());
    c.on('error', () => resolve());
    c.resume();
  });
  await r.daemon.waitFor(/socket: refused "\.\.\/\.\.\/etc"/, { from });
  t.false(r.daemon.stderr().slice(from).includes('notified run of /pub/alpha.git'));
  const exit = await r.daemon.stop();
  t.is(exit.code, 0);
});

test('/metrics of the daemon and of serve are Prometheus text counting what happened', async (t) => {
  const origin = await startOrigin(t);
  const r = await notifiedReplica(t, origin);
  const res = await request(r.url, '/metrics');
  t.is(res.status, 200);
  t.regex(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const m = parsePrometheus(res.body.toString());
  t.is(m.value('bundlemirror_daemon_runs_total', { trigger: 'refresh' }), 1);
  t.is(m.value('bundlemirror_daemon_run_failures_total', { trigger: 'refresh' }), 0);
  t.is(m.value('bundlemirror_daemon_repositories_synced_total', { outcome: 'cloned' }), 3);
  t.is(m.value('bundlemirror_daemon_last_run_success', { trigger: 'refresh' }), 1);
  t.true((m.value('bundlemirror_daemon_last_run_duration_seconds', { trigger: 'refresh' }) ?? -1) >= 0);
  t.true((m.value('bundlemirror_downloaded_bytes_total') ?? 0) > 0);
  t.is(m.value('bundlemirror_resumed_bytes_total'), 0);
  t.is(m.value('bundlemirror_replica_repositories', { state: 'in-sync' }), 3, 'repositories by state, from status');
  t.is(m.value('bundlemirror_daemon_run_in_progress'), 0);

  const served = await startServer({ bundles: origin.out, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => served.close());
  const manifest = await request(served.url, '/manifest.js.gz');
  t.is(manifest.status, 200);
  t.is((await request(served.url, '/pub/alpha.git/index.json', { method: 'HEAD' })).status, 200);
  t.is((await request(served.url, '/no/such/file')).status, 404);
  const s = parsePrometheus((await request(served.url, '/metrics')).body.toString());
  t.is(s.value('bundlemirror_serve_requests_total', { class: '2xx' }), 2);
  t.is(s.value('bundlemirror_serve_requests_total', { class: '4xx' }), 1);
  t.true((s.value('bundlemirror_serve_response_bytes_total') ?? 0) >= manifest.body.length);
  t.is(s.value('bundlemirror_serve_requests_in_flight'), 1, 'the /metrics request itself');
});

test('publish --notify never fails the publish: an unreachable replica is reported, exit 0; a bad command line is exit 2', async (t) => {
  const origin = await startOrigin(t);
  const tokenFile = join(origin.dir, 'notify.token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('change');
  await alpha.wt.push('main');
  const args = ['publish', '--toplevel', origin.toplevel, '--out', origin.out];
  const r = await runCli([
    ...args,
    '--json',
    '--notify',
    'http://127.0.0.1:1/notify',
    '--notify-token-file',
    tokenFile,
    alpha.bare,
  ]);
  t.is(r.code, 0, r.stderr);
  t.like(JSON.parse(r.stdout), { counts: { changed: 1 }, exitStatus: 0 });
  t.regex(r.stderr, /notify http:\/\/127\.0\.0\.1:1\/notify of \/pub\/alpha\.git failed: ECONNREFUSED/);
  t.is((await runCli([...args, '--notify', 'http://127.0.0.1:1/notify'])).code, 2, '--notify without a token file');
  t.is(
    (await runCli([...args, '--notify', 'ftp://x/notify', '--notify-token-file', tokenFile])).code,
    2,
    'not an http URL',
  );
});
