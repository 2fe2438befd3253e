import test from 'ava';
import { SlowLink } from '../src/faults/slow-link.js';

const SLICE = 16 * 1024;

/**
 * Sends `slices` through the link on a simulated clock whose timers fire
 * late, as node's do (whole milliseconds, at least 1 ms, plus `lateMs`),
 * the way the fault proxy sends them: a slice due already goes at once,
 * else a timer waits for it. Returns the simulated time the last slice went.
 */
function simulate(link: SlowLink, rate: number, slices: number, lateMs: number, start = 0): number {
  let now = start;
  for (let i = 0; i < slices; i++) {
    const sentAt = link.book(SLICE, rate, now);
    if (sentAt > now) now += Math.max(1, Math.ceil(sentAt - now)) + lateMs;
  }
  return now;
}

test('a link whose timers fire late still runs at the rate asked for, on average', (t) => {
  for (const rate of [25e6, 5e6, 1e6]) {
    for (const lateMs of [0, 0.3, 2]) {
      const slices = 4000; // 64 MiB
      const took = simulate(new SlowLink(), rate, slices, lateMs);
      const achieved = (slices * SLICE * 1000) / took;
      // within 2% (the 4 ms burst and one timer's lateness over seconds of simulated time)
      t.true(achieved <= rate * 1.02, `${rate} B/s, timers ${lateMs} ms late: ${achieved}`);
      t.true(achieved >= rate * 0.98, `${rate} B/s, timers ${lateMs} ms late: ${achieved}`);
    }
  }
});

test('without catching up, 16 KiB slices at 25 MB/s ran at about half the rate (why the burst exists)', (t) => {
  const took = simulate(new SlowLink(0), 25e6, 4000, 0.3);
  t.true((4000 * SLICE * 1000) / took < 25e6 * 0.8);
});

test('an idle link banks no more than its burst', (t) => {
  const link = new SlowLink(4);
  link.book(SLICE, 1e6, 0);
  // ten seconds idle, then 1 MB at 1 MB/s: it still takes at least a second less the burst
  const done = link.book(1e6, 1e6, 10_000);
  t.true(done >= 10_000 + 1000 - 4);
  t.true(done <= 10_000 + 1000);
});

test('one link for every connection: slices booked at the same moment queue, done when all of them would be sent', (t) => {
  const link = new SlowLink();
  let last = 0;
  for (let i = 0; i < 1000; i++) last = link.book(SLICE, 10e6, 0);
  t.true(Math.abs(last - (1000 * SLICE * 1000) / 10e6 + 4) < 1e-6);
});
