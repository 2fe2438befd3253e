/**
 * Smart HTTP under load, over real sockets: half-sent request bodies hold
 * no `git http-backend` process and are cut off after the body deadline;
 * at most `--git-backends` processes run at once; beyond that a request
 * waits in a short queue and then gets 503 with Retry-After. Every test is
 * bounded in sockets and time. Serial: they count this process's
 * `git http-backend` children, which a neighbouring test would add to.
 */
import test from 'ava';
import { join } from 'node:path';
import { git, gitText } from '../src/git/exec.js';
import { writeManifestFile } from '../src/manifest/manifest.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import type { BackendLimitOptions } from '../src/server/backend-limits.js';
import { eventually } from './support/daemon.js';
import { request } from './support/http.js';
import { makeRepo, showRefOf, tempDir } from './support/repos.js';
import { backendChildren, HALF_SENT_POST, rawRequest, watchBackends } from './support/server-attacks.js';

const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, '0') + s;

/**
 * A server over a repository of 10 MiB with these backend limits, and a
 * clone whose client stops reading: its upload-pack blocks on a full pipe
 * and holds a backend (running is 1 when this returns). The stalled
 * connection is closed with the test.
 */
async function oneBackendStalled(t: import('ava').ExecutionContext, gitLimits: BackendLimitOptions) {
  const f = await fixture(t, 10 << 20);
  const main = await gitText(['rev-parse', 'refs/heads/main'], { gitDir: f.bare });
  const server = await startServer({ bundles: f.out, toplevel: f.toplevel, port: 0, log: false, gitLimits });
  t.teardown(() => server.close({ graceMs: 100 }));
  const body = `${pkt(`want ${main}\n`)}0000${pkt('done\n')}`;
  const stalled = rawRequest(
    server.url,
    'POST /git/pub/a.git/git-upload-pack HTTP/1.1\r\nHost: mirror\r\nContent-Type: application/x-git-upload-pack-request\r\n' +
      `Content-Length: ${body.length}\r\n\r\n${body}`,
    { read: false, limitMs: 90_000 },
  );
  t.teardown(() => stalled.socket.destroy());
  await eventually(async () =>
    (await metric(server, 'bundlemirror_serve_git_backends_running')) === 1 ? true : undefined,
  );
  return { server, main, stalled };
}

async function metric(server: RunningServer, name: string): Promise<number> {
  const text = (await request(server.url, '/metrics')).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

/** A toplevel with one repository listed in a hand-made published tree (a manifest and nothing else). */
async function fixture(t: import('ava').ExecutionContext, bytesPerCommit = 0) {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const { bare } = await makeRepo(dir, toplevel, 'pub/a.git', { commits: bytesPerCommit ? 3 : 1, bytesPerCommit });
  await writeManifestFile(join(out, 'manifest.js.gz'), { '/pub/a.git': { modified: 1_700_000_000 } });
  return { dir, toplevel, out, bare };
}

test.serial(
  '100 half-sent POSTs hold no git process, are cut off after the body deadline, and a clone still works',
  async (t) => {
    const f = await fixture(t);
    const server = await startServer({
      bundles: f.out,
      toplevel: f.toplevel,
      port: 0,
      log: false,
      gitLimits: { max: 4, bodyDeadlineMs: 2000 },
    });
    t.teardown(() => server.close({ graceMs: 100 }));
    const watch = watchBackends();

    const halfSent = Array.from({ length: 100 }, () => rawRequest(server.url, HALF_SENT_POST));
    // the server is busy with 100 slow clients: a real clone goes through anyway
    const clone = join(f.dir, 'clone.git');
    await git(['clone', '--quiet', '--mirror', `${server.url}/git/pub/a.git`, clone]);
    t.is(await showRefOf(clone), await showRefOf(f.bare));

    const replies = await Promise.all(halfSent.map((r) => r.reply));
    const maxBackends = await watch.stop();
    t.true(maxBackends <= 4, `at most 4 backends at once, saw ${maxBackends}`);
    t.is(
      replies.filter((r) => r.startsWith('HTTP/1.1 408 ')).length,
      100,
      replies.find((r) => !r.startsWith('HTTP/1.1 408 ')),
    );
    t.true(replies.every((r) => /\r\nConnection: close\r\n/i.test(r)));
    t.is(await backendChildren(), 0);
    t.true((await metric(server, 'bundlemirror_serve_git_requests_refused_total')) >= 100);
  },
);

test.serial(
  'beyond --git-backends a request waits for a free backend, a full queue gets 503 with Retry-After',
  async (t) => {
    const { server, main, stalled } = await oneBackendStalled(t, { max: 1, queue: 1, queueWaitMs: 60_000 });

    // the next request waits for it
    const queued = request(server.url, '/git/pub/a.git/info/refs?service=git-upload-pack', { timeoutMs: 90_000 });
    await eventually(async () =>
      (await metric(server, 'bundlemirror_serve_git_requests_waiting')) === 1 ? true : undefined,
    );
    // the queue is full: refused at once, with a time to come back
    const refused = await request(server.url, '/git/pub/a.git/info/refs?service=git-upload-pack');
    t.is(refused.status, 503);
    t.regex(String(refused.headers['retry-after']), /^\d+$/);
    await t.throwsAsync(git(['ls-remote', `${server.url}/git/pub/a.git`]));
    t.is(await backendChildren(), 1);

    // the stalled client leaves: its backend ends and the waiting request gets it
    stalled.socket.destroy();
    const served = await queued;
    t.is(served.status, 200);
    t.true(served.body.includes(main));
    t.is(await metric(server, 'bundlemirror_serve_git_requests_waiting'), 0);
  },
);

test.serial('a request that waits longer than the queue allows gets 503 with Retry-After', async (t) => {
  const { server } = await oneBackendStalled(t, { max: 1, queue: 8, queueWaitMs: 300 });
  const r = await request(server.url, '/git/pub/a.git/info/refs?service=git-upload-pack');
  t.is(r.status, 503);
  t.is(r.headers['retry-after'], '1');
  t.is(await metric(server, 'bundlemirror_serve_git_backends_running'), 1);
});
