import test from 'ava';
import { isBundlemirrorError } from '../src/errors.js';
import { parsePullConfig } from '../src/replica/config/config.js';
import { checkPullConfig, ConfigShapeError } from '../src/replica/config/config-check.js';
import { PullConfigSchema } from '../src/replica/config/config-schema.js';
import { seededRandom as rng } from '../src/faults/random.js';

/** A config that sets every section, so that every list and nullable value holds something to mutate. */
const FULL = `
[core]
toplevel = /srv/mirror
log = /var/log/bm.log
[remote]
site = https://origin.example/git
manifest = https://origin.example/manifest.js.gz
allowed_signers = /etc/bm/allowed_signers
on_demand = https://bundles.example/
mirrors = https://m1.example/ https://m2.example/tree
[publish]
out = /srv/published
[pull]
include = /pub/*
exclude = /pub/private/*
nopurge = /pub/keep.git
ffonly = /pub/linear.git
post_update_hook = /usr/local/bin/updated
refresh = 300
socket = /run/bm.sock
socket_group = 0
projectslist = /srv/projects.list
[bundlemirror]
listen = 127.0.0.1:9418
notify_token_file = /etc/bm/token
redirects = https://cdn.example/
[fsck]
reclone_on_errors = missing blob
extra_repack_flags = --window=10
report_hook = /usr/local/bin/report
[schedule "nightly"]
cron = 0 2 * * *
include = /pub/big/*
`;

/** Values a mutation puts anywhere: each type, and at and past every bound the schema sets. */
const ODD: unknown[] = [
  null,
  undefined,
  true,
  false,
  0,
  -0,
  -1,
  1,
  1.5,
  100,
  101,
  0o777,
  0o1000,
  65535,
  65536,
  NaN,
  Infinity,
  2 ** 53 - 1,
  2 ** 53,
  '',
  'x',
  'info',
  'debug',
  'unknown',
  'relative/path',
  '/abs/path',
  'https://h.example/',
  'https://h.example/x',
  'not a url',
  [],
  ['x'],
  [1],
  [null],
  {},
  { host: 'h', port: 1 },
  { host: '', port: 1 },
  { name: 'n', cron: '* * * * *', include: [] },
  { section: 's', key: null, kind: 'unused', message: 'm' },
];

/** Every path in a JSON-like value, objects and list items included. */
function paths(v: unknown, at: string[] = []): string[][] {
  const out: string[][] = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, String(i)])));
  else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

function mutate(base: object, r: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const copy = structuredClone(base) as Record<string, unknown>;
  const all = paths(copy).filter((p) => p.length > 0);
  const changes = r() < 0.7 ? 1 : 2;
  for (let i = 0; i < changes; i++) {
    const path = pick(all);
    let parent: Record<string, unknown> = copy;
    for (const k of path.slice(0, -1)) {
      const next = parent[k];
      if (typeof next !== 'object' || next === null) return copy;
      parent = next as Record<string, unknown>;
    }
    const last = path[path.length - 1]!;
    const roll = r();
    if (roll < 0.1) delete parent[last];
    else if (roll < 0.15) parent[`${last}Extra`] = pick(ODD);
    else {
      // half the time a value of the same type, to probe the bounds within a type
      const was = parent[last];
      const same = ODD.filter((o) => typeof o === typeof was && Array.isArray(o) === Array.isArray(was));
      parent[last] = structuredClone(pick(r() < 0.5 && same.length > 0 ? same : ODD));
    }
  }
  return copy;
}

test('the hand check accepts exactly what PullConfigSchema accepts and returns what it returns', (t) => {
  const base = parsePullConfig(FULL, { source: 'full.conf', cpus: 8, realpath: false, cwd: '/cwd' });
  t.not(base.bundlemirror.listen, null);
  t.is(base.schedules.length, 1);
  const r = rng(41);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 4000; i++) {
    const value = r() < 0.02 ? ODD[Math.floor(r() * ODD.length)] : mutate(base, r);
    const zod = PullConfigSchema.safeParse(value);
    let mine: unknown = null;
    try {
      mine = checkPullConfig(value);
    } catch (err) {
      t.true(err instanceof ConfigShapeError, String(err));
    }
    if (zod.success) {
      accepted++;
      t.not(mine, null, `case ${i}: zod accepts it`);
      t.is(JSON.stringify(mine), JSON.stringify(zod.data), `case ${i}`);
    } else {
      refused++;
      t.is(mine, null, `case ${i}: zod refuses it at ${zod.error.issues[0]?.path.join('.')}`);
    }
  }
  t.true(accepted > 800 && refused > 1000, `${accepted} accepted, ${refused} refused`);
});

test('a value the reader lets through but the code cannot take is a config error naming the setting', (t) => {
  // a gid past the safe integers is digits, as socket_group wants, but no number the kernel knows
  const err = t.throws(() =>
    parsePullConfig(FULL.replace('socket_group = 0', 'socket_group = 99999999999999999999'), {
      source: 'full.conf',
      realpath: false,
    }),
  );
  t.true(isBundlemirrorError(err) && err.code === 'E_CONFIG', String(err));
  t.true(err!.message.includes('socketGroup'), err!.message);
});
