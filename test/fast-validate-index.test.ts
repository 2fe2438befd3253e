/**
 * index.json's hand-written check against the schema it stands in for:
 * on thousands of mutated indexes it must accept exactly what zod accepts
 * and return the same object, and parseRepoIndex must answer as before
 * (same index, same error code and words) whichever of the two decides.
 */
import test from 'ava';
import { fastRepoIndex } from '../src/manifest/fast-validate-index.js';
import { parseRepoIndex, repoIndexSchemas } from '../src/manifest/repo-index.js';
import { BundlemirrorError } from '../src/errors.js';
import { seededRandom as rng } from '../src/faults/random.js';

const O1 = '8c8db3984802307750f7e16708772fb28073137f';
const O2 = '13fa946f3869803b077fd352766cd5f9e98f5a8e';
const S1 = 'a141500c4eec2ca71b0a6910de26bca6a5b351f84f3d9e883e1010d7cf57a949';

const VALID = {
  version: 1,
  path: '/pub/a.git',
  generated: '2026-12-01T13:17:46.326Z',
  fingerprint: O1,
  head: 'ref: refs/heads/main',
  refs: { 'refs/heads/main': O1, 'refs/tags/v1': O2 },
  bundles: [
    {
      uri: `${S1}.bundle`,
      sha256: S1,
      size: 1000,
      creationToken: 1,
      prerequisites: [],
      tips: { 'refs/heads/main': O2 },
      parts: [
        { offset: 100, size: 400, objects: 3 },
        { offset: 500, size: 300, objects: 2 },
        { offset: 800, size: 180, objects: 2, after: 1 },
      ],
      extra: 'dropped',
    },
    {
      uri: '../parent.git/x.bundle',
      sha256: S1,
      size: 20,
      creationToken: 2,
      prerequisites: [O2],
      tips: {},
      superseded: '2026-12-01T00:00:00Z',
      slice: 3,
    },
  ],
  forkgroup: 'f1',
  roots: [O2],
  lfs: { objects: [{ oid: S1, size: 0 }], missing: [{ oid: S1, size: 7, more: 1 }], other: true },
  unknown: { deep: [1, 2] },
};

function oddValue(r: () => number): unknown {
  const choices: (() => unknown)[] = [
    () => null,
    () => true,
    () => 0,
    () => -0,
    () => -1,
    () => 1,
    () => 1.5,
    () => 2,
    () => 64,
    () => 65,
    () => 2 ** 32 - 1,
    () => 2 ** 32,
    () => 2 ** 40,
    () => 2 ** 40 + 1,
    () => 2 ** 53,
    () => '',
    () => 'x'.repeat([256, 257, 2048, 2049, 4096, 4097, 4200, 4201][Math.floor(r() * 8)]!),
    () => O1,
    () => O1.toUpperCase(),
    () => O1.slice(1),
    () => S1,
    () => `${S1}.bundle`,
    () => 'https://example.org/a.bundle',
    () => 'ftp://example.org/a.bundle',
    () => '../../a.bundle',
    () => '/abs.bundle',
    () => 'refs/heads/ok',
    () => [],
    () => [O1],
    () => [O1, 'nope'],
    () => [
      { offset: 12, size: 8, objects: 1 },
      { offset: 20, size: 960, objects: 2 },
    ],
    () => [{ oid: S1, size: 1 }],
    () => [{ oid: S1, size: -1 }],
    () => ({}),
    () => ({ 'refs/heads/x': O1 }),
    () => ({ 'refs/heads/bad..name': O1 }),
    () => ({ 'refs/heads/x': 'zz' }),
    () => ({ objects: [] }),
  ];
  return choices[Math.floor(r() * choices.length)]!();
}

/** Where a mutation can land: each level of the format. */
function sites(doc: Record<string, unknown>): Record<string, unknown>[] {
  const bundles = (Array.isArray(doc.bundles) ? doc.bundles : []).filter(
    (b): b is Record<string, unknown> => typeof b === 'object' && b !== null && !Array.isArray(b),
  );
  const out: Record<string, unknown>[] = [doc, ...bundles];
  for (const b of bundles) {
    if (Array.isArray(b.parts)) out.push(...b.parts.filter((p) => typeof p === 'object' && p !== null));
    if (typeof b.tips === 'object' && b.tips !== null) out.push(b.tips as Record<string, unknown>);
  }
  if (typeof doc.refs === 'object' && doc.refs !== null) out.push(doc.refs as Record<string, unknown>);
  const lfs = doc.lfs as Record<string, unknown> | undefined;
  if (lfs && typeof lfs === 'object') {
    out.push(lfs);
    for (const list of [lfs.objects, lfs.missing])
      if (Array.isArray(list)) out.push(...list.filter((o) => typeof o === 'object' && o !== null));
  }
  return out;
}

const KEYS = [
  ...new Set([
    ...Object.keys(VALID),
    ...Object.keys(VALID.bundles[0]!),
    ...Object.keys(VALID.bundles[1]!),
    'offset',
    'size',
    'objects',
    'after',
    'oid',
    'missing',
    'refs/heads/main',
    'refs/heads/bad..name',
    '__proto__',
  ]),
];

function mutate(r: () => number): unknown {
  if (r() < 0.02) return oddValue(r);
  const doc = JSON.parse(JSON.stringify(VALID)) as Record<string, unknown>;
  const changes = 1 + Math.floor(r() * 3);
  for (let i = 0; i < changes; i++) {
    const all = sites(doc);
    const site = all[Math.floor(r() * all.length)]!;
    const key = KEYS[Math.floor(r() * KEYS.length)]!;
    if (Array.isArray(site)) continue;
    if (r() < 0.2) delete site[key];
    else site[key] = oddValue(r);
  }
  // through JSON, as an index arrives
  return JSON.parse(JSON.stringify(doc));
}

test('the fast check accepts exactly what zod accepts and returns the same object, keys in the same order', (t) => {
  const r = rng(23);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 6000; i++) {
    const value = mutate(r);
    const fast = fastRepoIndex(value);
    const zod = repoIndexSchemas().RepoIndexSchema.safeParse(value);
    const shown = () => JSON.stringify(value)?.slice(0, 300);
    if (zod.success) {
      accepted++;
      t.not(fast, null, `case ${i}: zod accepts ${shown()}`);
      t.is(JSON.stringify(fast), JSON.stringify(zod.data), `case ${i}`);
    } else {
      refused++;
      t.is(fast, null, `case ${i}: zod refuses ${shown()}`);
    }
  }
  t.true(accepted > 500 && refused > 500, `${accepted} accepted, ${refused} refused`);
});

test('parseRepoIndex answers as zod alone would: the same index, or E_INDEX with the same words', (t) => {
  const r = rng(5);
  for (let i = 0; i < 800; i++) {
    const value = mutate(r) as { path?: unknown };
    const text = JSON.stringify(value);
    let ours: unknown;
    try {
      ours = parseRepoIndex(text, '/pub/a.git');
    } catch (err) {
      ours = err;
    }
    const zod = repoIndexSchemas().RepoIndexSchema.safeParse(value);
    if (ours instanceof BundlemirrorError) {
      t.is(ours.code, 'E_INDEX', `case ${i}`);
      if (zod.success && zod.data.path === '/pub/a.git')
        t.fail(`case ${i}: zod accepts what was refused: ${ours.message}`);
    } else {
      t.true(zod.success, `case ${i}`);
      t.is(JSON.stringify(ours), JSON.stringify(zod.success ? zod.data : null), `case ${i}`);
    }
  }
  const bad = { ...VALID, refs: { 'refs/heads/bad..name': O1 } };
  const err = t.throws(() => parseRepoIndex(JSON.stringify(bad), '/pub/a.git'), { instanceOf: BundlemirrorError });
  t.is(err.code, 'E_INDEX');
  t.true(err.message.includes('refs/heads/bad..name'), 'the refused ref is named');
  const other = t.throws(() => parseRepoIndex(JSON.stringify(VALID), '/pub/b.git'), { instanceOf: BundlemirrorError });
  t.is(other.code, 'E_INDEX');
});

test('a bundle whose parts are not a list of parts is refused with E_INDEX, not a crash', (t) => {
  for (const parts of [[], {}, [null, 1], [{ offset: 1 }], 'x', [{ offset: 100, size: 400, objects: 3 }]]) {
    const doc = { ...VALID, bundles: [{ ...VALID.bundles[0], parts }] };
    const err = t.throws(() => parseRepoIndex(JSON.stringify(doc), '/pub/a.git'), { instanceOf: BundlemirrorError });
    t.is(err.code, 'E_INDEX', JSON.stringify(parts));
  }
});
