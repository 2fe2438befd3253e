import test from 'ava';
import { gzipSync } from 'node:zlib';
import { fastManifestEntry } from '../src/manifest/fast-validate.js';
import { ManifestEntrySchema, parseManifest, serializeManifest, type Manifest } from '../src/manifest/manifest.js';
import { duplicateKeys } from '../src/manifest/duplicate-keys.js';
import { repoPathProblem } from '../src/git/refname.js';
import { seededRandom as rng } from '../src/faults/random.js';

const VALID: Record<string, unknown> = {
  modified: 1700000000,
  fingerprint: '8c8db3984802307750f7e16708772fb28073137f',
  head: 'ref: refs/heads/main',
  reference: null,
  description: 'a repository',
  owner: 'someone',
  forkgroup: 'f1',
  symlinks: ['/pub/other.git'],
  extra: { nested: [1, 2] },
};

/** Values a mutation puts in a field: each type JSON can carry, at and past every limit the schema sets. */
function oddValue(r: () => number): unknown {
  const choices: (() => unknown)[] = [
    () => null,
    () => true,
    () => 0,
    () => -1,
    () => -0,
    () => 1.5,
    () => 2 ** 53 - 1,
    () => 2 ** 53,
    () => 1e300,
    () => '',
    () => 'x'.repeat([255, 256, 257, 1024, 1025, 4096, 4097, 4200, 4201, 65536, 65537][Math.floor(r() * 11)]!),
    () => '8c8db3984802307750f7e16708772fb28073137f',
    () => '8C8DB3984802307750F7E16708772FB28073137F',
    () => '8c8db3984802307750f7e16708772fb28073137',
    () => [],
    () => ['/pub/a.git'],
    () => ['x'.repeat(1025)],
    () => [1],
    () => [null],
    () => Array.from({ length: 10001 }, () => 'a'),
    () => ({}),
    () => ({ a: 1 }),
  ];
  return choices[Math.floor(r() * choices.length)]!();
}

const KEYS = [...Object.keys(VALID), '__proto__', 'constructor', 'toString'];

function mutate(r: () => number): unknown {
  const roll = r();
  if (roll < 0.03) return oddValue(r); // not an object at all, or an array
  const text = JSON.stringify(VALID);
  const entry = JSON.parse(text) as Record<string, unknown>;
  const changes = 1 + Math.floor(r() * 3);
  for (let i = 0; i < changes; i++) {
    const key = KEYS[Math.floor(r() * KEYS.length)]!;
    if (r() < 0.2) delete entry[key];
    else entry[key] = oddValue(r);
  }
  // through JSON, as a manifest arrives (a "__proto__" key becomes an own property)
  return JSON.parse(JSON.stringify(entry).replace('"toString"', '"__proto__"'));
}

test('the fast check accepts exactly what zod accepts and returns the same object, keys in the same order', (t) => {
  const r = rng(17);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    const value = mutate(r);
    const fast = fastManifestEntry(value);
    const zod = ManifestEntrySchema.safeParse(value);
    if (zod.success) {
      accepted++;
      // JSON input always takes the fast path when zod accepts it
      t.not(fast, null, `case ${i}: zod accepts ${JSON.stringify(value)?.slice(0, 200)}`);
      t.deepEqual(Object.keys(fast!), Object.keys(zod.data), `case ${i}`);
      t.is(JSON.stringify(fast), JSON.stringify(zod.data), `case ${i}`);
    } else {
      refused++;
      t.is(fast, null, `case ${i}: zod refuses ${JSON.stringify(value)?.slice(0, 200)}`);
    }
  }
  // both sides of the boundary were exercised
  t.true(accepted > 500 && refused > 500, `${accepted} accepted, ${refused} refused`);
});

test("an entry the fast check refuses gets zod's detailed problem, and the rest of the manifest is kept", (t) => {
  const manifest = {
    '/pub/good.git': VALID,
    '/pub/bad.git': { ...VALID, fingerprint: 'NOT-HEX' },
    '/pub/worse.git': { ...VALID, modified: -5, symlinks: [7] },
  };
  const bytes = gzipSync(Buffer.from(JSON.stringify(manifest)));
  const { manifest: parsed, problems } = parseManifest(bytes, 'test manifest');
  t.deepEqual(Object.keys(parsed), ['/pub/good.git']);
  const zodProblem = (v: unknown) => {
    const r = ManifestEntrySchema.safeParse(v);
    return r.success ? null : r.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; ');
  };
  t.deepEqual(problems, [
    { path: '/pub/bad.git', problem: zodProblem(manifest['/pub/bad.git'])! },
    { path: '/pub/worse.git', problem: zodProblem(manifest['/pub/worse.git'])! },
  ]);
  t.true(problems[0]!.problem.startsWith('fingerprint:'));
  t.true(problems[1]!.problem.includes('modified') && problems[1]!.problem.includes('symlinks'));
});

test('the manifest is the same bytes whatever order its entries hold their keys in', (t) => {
  const built: Manifest = {
    '/b.git': { modified: 1, fingerprint: VALID.fingerprint as string, head: null, reference: null, owner: 'o' },
    '/a.git': { modified: 2, fingerprint: null, head: 'ref: refs/heads/main', reference: '/b.git', extra: 1 },
  };
  // as parsed: the schema's order, which differs from the order publish builds entries in
  const reordered = parseManifest(serializeManifest(built)).manifest;
  t.notDeepEqual(Object.keys(reordered['/b.git']!), Object.keys(built['/b.git']!));
  t.deepEqual(serializeManifest(reordered), serializeManifest(built));
  t.deepEqual(reordered, parseManifest(serializeManifest(reordered)).manifest);
});

test('duplicate keys are found past escaped quotes and backslashes in strings', (t) => {
  const text = '{"a\\"b": {"x": "\\\\", "x": 1}, "c": "\\"", "a\\"b": [{"k": "}", "k": "{"}], "\\u0061": 0, "a": 1}';
  t.deepEqual(duplicateKeys(text), [
    { path: ['a"b'], key: 'x' },
    { path: [], key: 'a"b' },
    { path: ['a"b'], key: 'k' },
    { path: [], key: 'a' },
  ]);
});

test('with the parsed document, duplicates are found as without it, and a document without any is passed quickly whatever its strings hold', (t) => {
  const doubled = '{"a\\"b": {"x": "\\\\", "x": 1}, "c": "\\"", "a\\"b": [{"k": "}", "k": "{"}], "\\u0061": 0, "a": 1}';
  t.deepEqual(duplicateKeys(doubled, 100, JSON.parse(doubled)), duplicateKeys(doubled));
  // strings that look like keys to a quick count (a colon after a quote) and keys with space before the colon
  for (const text of [
    '{"d": ":-)", "e": "\\":", "f" : {"g"\n:\t[":", {"h": "\\\\\\":"}]}, "__proto__": {"i": 1}}',
    '{"d": ":-)", "d" : 1}',
    '{"x": "\\":", "y": 1, "y": 2}',
    '[{"a": 1}, {"a": 1, "a": 2}]',
  ])
    t.deepEqual(duplicateKeys(text, 100, JSON.parse(text)), duplicateKeys(text), text);
  t.deepEqual(duplicateKeys('{"x": "\\":", "y": 1, "y": 2}', 100, JSON.parse('{"x": "\\":", "y": 1, "y": 2}')), [
    { path: [], key: 'y' },
  ]);
});

test('repository paths: the quick accept of plain paths agrees with the full check', (t) => {
  for (const p of [
    '/a.git',
    '/pub/scm/linux/kernel/git/torvalds/linux.git',
    '/g00/r00000.git',
    '/a_b/c+d=e@f~g%h,i.git',
  ])
    t.is(repoPathProblem(p), null, p);
  for (const p of [
    '/a/.git',
    '/.a',
    '/-a',
    '/a/-b',
    '/a//b',
    '/a/../b',
    '/a/./b',
    '/a/',
    'a.git',
    '',
    '/a\\b',
    '/a\u202eb',
    '/a\nb',
  ])
    t.not(repoPathProblem(p), null, JSON.stringify(p));
  t.not(repoPathProblem('/' + 'a'.repeat(1024)), null, 'longer than 1024');
});
