/**
 * The progress display as pure functions: the rate estimate on a fake
 * clock, the line for a given width, labels for borrowed bundles, and the
 * terminal reporter's output into a fake stream.
 */
import test from 'ava';
import { Writable } from 'node:stream';
import { RateMeter, createProgressReporter, renderProgressLine, shorten } from '../src/transfer/progress.js';
import { fileLabel } from '../src/cli/progress-bars.js';
import { parseDuration } from '../src/format/duration.js';

const MiB = 1 << 20;

test('the rate is unknown for the first second, then an average over a sliding window: no burst promises 60 MiB/s', (t) => {
  let now = 0;
  const meter = new RateMeter(10_000, () => now);
  now = 50;
  meter.add(3 * MiB); // socket buffers arrive in one burst
  t.is(meter.current(), 0, 'too early to tell');
  for (let s = 1; s <= 4; s++) {
    now = s * 1000;
    meter.add(3 * MiB);
  }
  // 15 MiB in 4 s on a 3 MiB/s link (the burst included): within 30% of the truth, not 60 MiB/s
  const rate = meter.current() / MiB;
  t.true(rate > 2.5 && rate < 4, `${rate} MiB/s`);
  // a stall: nothing arrives for 20 s, the window slides past the bytes and the rate falls to 0
  now += 20_000;
  t.is(meter.current(), 0);
});

const sample = {
  label: '/pub/tools/alpha.git 1f3a9c2e07bd (from /pub/attic/old.git)',
  received: 1.2 * MiB,
  total: 2.5 * MiB,
  resumedFrom: MiB,
  rate: 3 * MiB,
};

test('at 80 columns the line keeps the rate, the ETA and "resumed from", and never reaches the last column', (t) => {
  const line = renderProgressLine(sample, 80);
  t.true(line.length <= 79, `${line.length}: ${line}`);
  t.regex(line, /3\.0 MiB\/s/);
  t.regex(line, /ETA \d+s/);
  t.regex(line, /resumed from 1\.0 MiB/);
  t.regex(line, /\[#+-+\]/);
});

test('the line fits every width from 20 to 200 columns, giving up detail in order', (t) => {
  for (let w = 20; w <= 200; w++) {
    const line = renderProgressLine(sample, w);
    t.true(line.length <= w - 1, `width ${w}: ${line.length}: ${line}`);
    t.regex(line, /\d+%/, `width ${w} keeps the percentage`);
  }
  t.regex(renderProgressLine(sample, 200), /1\.2 MiB\/2\.5 MiB/, 'sizes when there is room');
  t.regex(
    renderProgressLine(sample, 200),
    /\/pub\/tools\/alpha\.git 1f3a9c2e07bd \(from \/pub\/attic\/old\.git\)/,
    'the whole label when there is room',
  );
  t.notRegex(renderProgressLine(sample, 50), /resumed/, 'resumed goes before rate and ETA');
  t.regex(renderProgressLine(sample, 50), /ETA/);
});

test('long labels are cut in the middle; an unknown rate says so instead of a made-up ETA', (t) => {
  t.is(shorten('abcdefghijklmnop', 7), 'abc…nop');
  t.is(shorten('short', 10), 'short');
  const line = renderProgressLine({ ...sample, rate: 0 }, 120);
  t.regex(line, /-\/s ETA \?/);
});

test('a bundle a fork borrows from its parent is labelled with where it lives, not ../../', (t) => {
  const sha = 'ab12cd34ef56'.padEnd(64, '0');
  t.is(
    fileLabel('/pub/forks/b.git', `../../linux.git/${sha}.bundle`),
    `/pub/forks/b.git ab12cd34ef56 (from /pub/linux.git)`,
  );
  t.is(fileLabel('/pub/a.git', `${sha}.bundle`), `/pub/a.git ab12cd34ef56`);
});

test('the terminal reporter redraws in place, prints log lines and the final line on clean ground, and leaves no bar behind', (t) => {
  let out = '';
  const stream = new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { columns: 60, isTTY: true });
  let now = 0;
  const r = createProgressReporter({ stream, now: () => now });
  const a = r.start('/pub/a.git aaaa', 10 * MiB);
  now += 1000;
  a.update({ received: 5 * MiB, total: 10 * MiB, resumedFrom: 0, rate: MiB });
  r.log('WARNING: something happened');
  now += 1000;
  a.update({ received: 10 * MiB, total: 10 * MiB, resumedFrom: 0, rate: MiB });
  a.finish('done');
  r.stop();
  // every redraw first goes back over what it drew and clears to the end of the screen
  t.true(out.includes('\u001b[1A\u001b[J'), JSON.stringify(out));
  const visible = out.split(/\r\u001b\[\d+A\u001b\[J|\r\u001b\[J/).join('');
  t.regex(visible, /WARNING: something happened\n/);
  t.regex(out, /\/pub\/a\.git aaaa: done, 10\.0 MiB\n$/, 'the last thing written is the final line, nothing after it');
  for (const line of visible.split('\n')) t.true(line.length <= 59, line);
});

test('durations parse as people write them', (t) => {
  t.is(parseDuration('30s'), 30_000);
  t.is(parseDuration('10m'), 600_000);
  t.is(parseDuration('1h30m'), 5_400_000);
  t.is(parseDuration('90'), 90_000);
  t.is(parseDuration('soon'), null);
  t.is(parseDuration('10 m'), null);
});
