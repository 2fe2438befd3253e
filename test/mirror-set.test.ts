/** The choice between hosts of one tree, on a fake clock: fastest responsive first, resting after failures, skipped after a wrong file. */
import test from 'ava';
import { MirrorSet } from '../src/transfer/mirrors.js';

const A = 'http://a.example/tree/';
const B = 'http://b.example/';
const C = 'http://c.example/m/';
const FILE = `${A}pub/x.git/${'1'.repeat(64)}.bundle`;

test('the primary first until speeds are known, then the fastest; the same path under every root', (t) => {
  let now = 0;
  const hosts = new MirrorSet(A, [B, C], () => now);
  t.deepEqual(
    hosts.candidates(FILE).map((c) => c.root),
    [A, B, C],
  );
  t.is(hosts.candidates(FILE)[2]!.url, `${C}pub/x.git/${'1'.repeat(64)}.bundle`);
  hosts.delivered(A, 1_000_000, 1_000);
  hosts.delivered(C, 4_000_000, 1_000);
  t.deepEqual(
    hosts.candidates(FILE).map((c) => c.root),
    [C, A, B],
  );
  t.is(hosts.rebase('http://elsewhere/x', B), null);
});

test('a failing host rests, longer each time in a row, while the next attempt goes to another; bytes end the rest', (t) => {
  let now = 0;
  const hosts = new MirrorSet(A, [B], () => now);
  hosts.failed(A, 'connection refused');
  t.is(hosts.choose(FILE)?.root, B);
  t.is(hosts.waitFor(FILE), 0);
  hosts.failed(B, 'stalled');
  t.true(hosts.waitFor(FILE) > 0, 'both rest: wait for the first one back');
  t.is(hosts.choose(FILE)?.root, A, 'the one back soonest comes first');
  now += 2_000;
  hosts.failed(A, 'refused again');
  now += 2_000;
  t.is(hosts.choose(FILE)?.root, B, 'A rests 4 s after its second failure in a row');
  hosts.delivered(A, 10, 1);
  t.is(hosts.choose(FILE)?.root, A, 'a host that delivers is back');
  const report = hosts.report();
  t.is(report.find((r) => r.url === A)?.failures, 2);
  t.is(report.find((r) => r.url === A)?.lastError, 'refused again');
});

test('a host that served a file wrong is never asked for that file again in the run, but still for others', (t) => {
  const hosts = new MirrorSet(A, [B], () => 0);
  hosts.servedWrong(FILE, A, 'sha256 mismatch');
  t.deepEqual(
    hosts.candidates(FILE).map((c) => c.root),
    [B],
  );
  hosts.servedWrong(FILE, B, 'size mismatch');
  t.is(hosts.choose(FILE), null);
  t.is(hosts.candidates(`${A}pub/y.git/index.json`).length, 2);
  hosts.fileDone(B, '/pub/y.git');
  t.is(hosts.servedBy.get('/pub/y.git'), B);
});
