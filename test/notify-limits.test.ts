/**
 * The daemon's notification listener under abuse, over real HTTP on
 * 127.0.0.1: failed authentications are logged once per window plus a
 * counted summary, not once each; a client that fails too often, or sends
 * too many requests, gets 429 with Retry-After (even with the right token,
 * once it has spent its failures), while other clients are served.
 */
import test from 'ava';
import { Agent } from 'node:http';
import { startListeners, type NotifyOutcome } from '../src/replica/daemon/notify-listener.js';
import type { NotifyResult } from '../src/replica/daemon/metrics-daemon.js';
import { memoryLog } from '../src/replica/log.js';
import { request } from './support/http.js';

const TOKEN = 'listener-token-0123456789abcdef';

async function listener(t: import('ava').ExecutionContext, limits: Parameters<typeof startListeners>[0]['limits']) {
  const log = memoryLog();
  const counts = new Map<NotifyResult, number>();
  const notified: string[][] = [];
  const l = await startListeners({
    listen: { host: '127.0.0.1', port: 0 },
    socket: null,
    token: () => Buffer.from(TOKEN),
    notify: (paths): NotifyOutcome => {
      notified.push(paths);
      return { accepted: paths, ignored: [] };
    },
    metrics: async () => '',
    count: (r) => counts.set(r, (counts.get(r) ?? 0) + 1),
    log,
    limits,
  });
  t.teardown(() => l.close());
  const post = (token: string, localAddress?: string) =>
    request(l.url!, '/notify', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ repos: ['/pub/a.git'] }),
      // another loopback address is another client
      agent: localAddress ? new Agent({ localAddress } as ConstructorParameters<typeof Agent>[0]) : false,
    });
  return { l, log, counts, notified, post };
}

test('200 failed authentications write one WARN line and one counted summary, and the failing client gets 429', async (t) => {
  // a window longer than the test: the summary is written when the listener closes; and a refill so slow
  // that no failure is given back while the test runs (at 1 a minute, a loaded machine that takes over a
  // minute for the 200 requests earned a sixth 401 and a second WARN line)
  const { l, log, counts, notified, post } = await listener(t, {
    failureBurst: 5,
    failuresPerMinute: 1e-6,
    summaryWindowMs: 600_000,
  });
  const statuses: number[] = [];
  for (let i = 0; i < 200; i++) statuses.push((await post(`wrong-${i}-0123456789abcdef`)).status);
  t.is(statuses.filter((s) => s === 401).length, 5);
  t.is(statuses.filter((s) => s === 429).length, 195);
  // once its failures are spent, even the right token waits: guessing costs time
  const right = await post(TOKEN);
  t.is(right.status, 429);
  t.regex(String(right.headers['retry-after']), /^[1-9]\d*$/);
  t.deepEqual(notified, []);
  // another client is not held back by this one
  t.is((await post(TOKEN, '127.0.0.2')).status, 202);
  t.deepEqual(notified, [['/pub/a.git']]);

  t.is(log.lines.filter((line) => line.startsWith('warn: ')).length, 2, 'one line per kind while the window is open');
  await l.close();
  const warns = log.lines.filter((line) => line.startsWith('warn: '));
  t.is(warns.length, 4, warns.join('\n'));
  t.is(warns.filter((l) => /notifications with a missing or wrong bearer token from 127\.0\.0\.1/.test(l)).length, 1);
  t.true(
    warns.some((l) =>
      /refused 4 more of notifications with a missing or wrong bearer token in the last \d+ s, from 1 address\(es\): 127\.0\.0\.1/.test(
        l,
      ),
    ),
  );
  t.true(
    warns.some((l) => /refused 195 more of requests over the per-client limit .* from 1 address\(es\)/.test(l)),
    warns.join('\n'),
  );
  t.is(counts.get('unauthorized'), 5);
  t.is(counts.get('limited'), 196);
  t.is(counts.get('accepted'), 1);
});

test('a client sending faster than its rate gets 429 with Retry-After; within it, every notification is accepted', async (t) => {
  const { post, counts } = await listener(t, { burst: 20, perSecond: 0.01 });
  const statuses: number[] = [];
  for (let i = 0; i < 30; i++) statuses.push((await post(TOKEN)).status);
  t.is(statuses.filter((s) => s === 202).length, 20);
  t.is(statuses.filter((s) => s === 429).length, 10);
  t.is(counts.get('accepted'), 20);
  t.is(counts.get('limited'), 10);
});
