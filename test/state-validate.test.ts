import test from 'ava';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fastRepoState } from '../src/replica/state-validate.js';
import { STATE_FILE } from '../src/replica/state-file.js';
import { RepoStateSchema } from '../src/replica/state-schema.js';
import { openState } from '../src/replica/state.js';
import { seededRandom as rng } from '../src/faults/random.js';

const VALID: Record<string, unknown> = {
  fingerprint: '8c8db3984802307750f7e16708772fb28073137f',
  head: 'ref: refs/heads/main',
  description: 'd',
  owner: null,
  symlinks: ['/pub/b.git'],
  lastSuccess: '2026-12-01T00:00:00.000Z',
  lastError: { message: 'm', code: 'E_HTTP', at: '2026-12-01T00:00:00.000Z' },
  failures: 2,
  appliedBundles: ['a'.repeat(64)],
  extra: [1],
};

function oddValue(r: () => number): unknown {
  const choices: (() => unknown)[] = [
    () => null,
    () => false,
    () => 0,
    () => -1,
    () => 2.5,
    () => 2 ** 53,
    () => '',
    () => 'x',
    () => '8c8db3984802307750f7e16708772fb28073137f',
    () => 'a'.repeat(64),
    () => [],
    () => ['a'.repeat(64)],
    () => ['A'.repeat(64)],
    () => [3],
    () => ({}),
    () => ({ message: 'm', code: 'E', at: 't' }),
    () => ({ message: 'm', code: 'E', at: 't', extra: 1 }),
    () => ({ message: 'm', code: 5, at: 't' }),
  ];
  return choices[Math.floor(r() * choices.length)]!();
}

const KEYS = [...Object.keys(VALID), '__proto__', 'constructor'];

test('the fast state check accepts exactly what zod accepts and returns the same object', (t) => {
  const r = rng(23);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    const entry = JSON.parse(JSON.stringify(VALID)) as Record<string, unknown>;
    const changes = 1 + Math.floor(r() * 3);
    for (let c = 0; c < changes; c++) {
      const key = KEYS[Math.floor(r() * KEYS.length)]!;
      if (r() < 0.2) delete entry[key];
      else entry[key] = oddValue(r);
    }
    const value = r() < 0.03 ? oddValue(r) : (JSON.parse(JSON.stringify(entry)) as unknown);
    const fast = fastRepoState(value);
    const zod = RepoStateSchema.safeParse(value);
    if (zod.success) {
      accepted++;
      t.not(fast, null, `case ${i}: zod accepts ${JSON.stringify(value)}`);
      t.deepEqual(Object.keys(fast!), Object.keys(zod.data), `case ${i}`);
      t.is(JSON.stringify(fast), JSON.stringify(zod.data), `case ${i}`);
    } else {
      refused++;
      t.is(fast, null, `case ${i}: zod refuses ${JSON.stringify(value)}`);
    }
  }
  t.true(accepted > 500 && refused > 500, `${accepted} accepted, ${refused} refused`);
});

test('a state file changed by another writer is read again, not taken from what this process saw', async (t) => {
  const top = await mkdtemp(join(tmpdir(), 'bm-state-'));
  t.teardown(() => rm(top, { recursive: true, force: true }));
  const state = await openState(top, { warn: () => {} });
  const fp = '8c8db3984802307750f7e16708772fb28073137f';
  await state.recordSuccess('/a.git', { fingerprint: fp });
  t.is((await state.get('/a.git'))?.fingerprint, fp);
  // another process rewrites the file with a different fingerprint (same length, same shape)
  const file = join(top, '.bundlemirror', STATE_FILE);
  const other = fp.replace(/^8/, '9');
  await writeFile(file, (await readFile(file, 'utf8')).replace(fp, other));
  t.is((await state.get('/a.git'))?.fingerprint, other);
  // and an entry no check accepts is dropped, as before
  await writeFile(file, (await readFile(file, 'utf8')).replace(other, 'not-a-fingerprint'));
  t.is(await state.get('/a.git'), undefined);
  // a change made while entries are shared with the last read leaves that read as it was
  await state.recordSuccess('/b.git', { fingerprint: fp });
  const before = await state.all();
  await state.recordFailure('/b.git', new Error('boom'));
  t.is(before['/b.git']?.lastError, undefined);
  t.is((await state.get('/b.git'))?.lastError?.message, 'boom');
});
