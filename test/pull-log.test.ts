/**
 * `[core] log`: JSON lines in pino's shape (level number, time, pid, msg),
 * the level from `[core] loglevel`, origin text made printable, a new file
 * after a rotation (reopen), and an unwritable log refused before any work.
 */
import test, { type ExecutionContext } from 'ava';
import { chmod, mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../src/errors.js';
import { createPullLog } from '../src/replica/log.js';
import { tempDir } from './support/repos.js';

interface Line {
  level: number;
  time: number;
  pid: number;
  msg: string;
}

async function lines(file: string): Promise<Line[]> {
  const text = await readFile(file, 'utf8');
  // whole lines only: a reader never sees half a message
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${file} does not end with a newline`);
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

/** A directory removed at teardown. */
async function logDir(t: ExecutionContext): Promise<string> {
  const { dir, cleanup } = await tempDir('bm-log-');
  t.teardown(cleanup);
  return dir;
}

/** A log to `file` only: quiet on the console, and the console lines dropped. */
function fileLog(file: string, level: 'debug' | 'info' = 'info') {
  return createPullLog({ file, level, console: 'quiet', write: () => {} });
}

test('each message is one JSON line with pino fields; debug lines only at loglevel debug', async (t) => {
  const dir = await logDir(t);
  const file = join(dir, 'logs', 'pull.log');
  const before = Date.now();
  const log = fileLog(file);
  log.debug('not written');
  log.info('/pub/a.git: updated');
  log.warn('careful');
  log.error('broken "quoted" \\ text');
  await log.flush();
  const got = await lines(file);
  t.deepEqual(
    got.map((l) => [l.level, l.msg]),
    [
      [30, '/pub/a.git: updated'],
      [40, 'careful'],
      [50, 'broken "quoted" \\ text'],
    ],
  );
  for (const l of got) {
    t.is(l.pid, process.pid);
    t.true(l.time >= before && l.time <= Date.now());
    t.deepEqual(Object.keys(l), ['level', 'time', 'pid', 'msg']);
  }

  const debugFile = join(dir, 'debug.log');
  const verbose = fileLog(debugFile, 'debug');
  verbose.debug('planned');
  t.deepEqual(
    (await lines(debugFile)).map((l) => [l.level, l.msg]),
    [[20, 'planned']],
  );
});

test('text an origin sent cannot split a line or reach the log raw', async (t) => {
  const file = join(await logDir(t), 'pull.log');
  const log = fileLog(file);
  log.warn('/pub/evil\n{"level":50,"msg":"forged"}\u001b[2J.git: refused');
  const text = await readFile(file, 'utf8');
  t.is(text.split('\n').filter(Boolean).length, 1);
  t.false(text.includes('\u001b'));
});

test('after a rotation, reopen() writes to a new file of the same name', async (t) => {
  const file = join(await logDir(t), 'pull.log');
  const log = fileLog(file);
  log.info('before');
  await rename(file, `${file}.1`);
  log.info('still to the moved file');
  log.reopen?.();
  log.info('after');
  t.deepEqual(
    (await lines(`${file}.1`)).map((l) => l.msg),
    ['before', 'still to the moved file'],
  );
  t.deepEqual(
    (await lines(file)).map((l) => l.msg),
    ['after'],
  );
});

test('a log that cannot be opened is refused before any work, with E_CONFIG or E_PERMISSION', async (t) => {
  const dir = await logDir(t);
  // a directory where the file should be
  const file = join(dir, 'is-a-dir');
  await mkdir(file);
  const err = t.throws(() => createPullLog({ file, level: 'info', console: 'quiet' }));
  t.true(err instanceof BundlemirrorError);
  t.true(['E_CONFIG', 'E_PERMISSION'].includes((err as BundlemirrorError).code));
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked');
    await mkdir(locked);
    await chmod(locked, 0o500);
    const e2 = t.throws(() => createPullLog({ file: join(locked, 'x.log'), level: 'info', console: 'quiet' }));
    t.is((e2 as BundlemirrorError).code, 'E_PERMISSION');
  }
});
