import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestText, serializeManifest, type Manifest } from '../src/manifest/manifest.js';
import { spliceManifestText } from '../src/manifest/manifest-splice.js';
import { readPublishedManifestText, writeManifestIfChanged } from '../src/origin/manifest-writer.js';
import { seededRandom as rng } from '../src/faults/random.js';

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** Text that could pass for layout: the entry separator and an entry's first line as escaped text, quotes, unicode. */
function oddText(r: Rand): string {
  const bits = [
    '\n "',
    '\n "/pub/r1.git": {',
    ',\n "',
    '\n }',
    '"',
    '\\',
    '{',
    '}',
    'é',
    '😀',
    '\u2028',
    '\u0001',
    'x',
    ' ',
  ];
  let s = '';
  for (let i = Math.floor(r() * 6); i > 0; i -= 1) s += pick(r, bits);
  return s;
}

/** Keys that sort at either end, need JSON escapes, or are unicode beyond the BMP. */
function repoKey(r: Rand): string {
  const roll = r();
  if (roll < 0.05) return `/pub/${oddText(r)}.git`;
  if (roll < 0.1) return pick(r, ['/', '/!', '/~~~', '/\u00ff', '/😀.git', '/pub/a"b.git', '/pub/a\\b.git', '/\u007f']);
  return `/pub/r${Math.floor(r() * 1000)}.git`;
}

function entry(r: Rand, i: number): Manifest[string] {
  if (r() < 0.02) return {};
  const e: Manifest[string] = { modified: 1_700_000_000 + i, fingerprint: sha1(`${i}:${r()}`) };
  if (r() < 0.7) e.head = 'ref: refs/heads/main';
  if (r() < 0.7) e.description = r() < 0.5 ? `repository ${i}` : oddText(r);
  if (r() < 0.3) e.owner = oddText(r);
  if (r() < 0.2) e.symlinks = [`/pub/link${i}.git`, oddText(r)];
  if (r() < 0.2) e.reference = null;
  if (r() < 0.1) e.forkgroup = `g${i}`;
  // unknown keys, in any order, nested, some that JavaScript enumerates first
  if (r() < 0.1) (e as Record<string, unknown>)['zz'] = { b: [1, { '1': 'x', a: oddText(r) }], a: null };
  if (r() < 0.05) (e as Record<string, unknown>)['7'] = -0.5;
  // keys in an order other than the written one
  return r() < 0.3 ? Object.fromEntries(Object.entries(e).reverse()) : e;
}

function collection(r: Rand, n: number): Manifest {
  const m: Manifest = {};
  for (let i = 0; i < n; i += 1) m[repoKey(r)] = entry(r, i);
  return m;
}

/** A copy of `previous` with a few entries changed, added and removed, as a publish makes it. */
function edited(r: Rand, previous: Manifest): Manifest {
  const next = { ...previous };
  const keys = Object.keys(previous).sort();
  const edits = 1 + Math.floor(r() * 5);
  for (let i = 0; i < edits; i += 1) {
    const roll = r();
    // the first and last entries often: the ends of the text are where a splice goes wrong
    const existing = keys.length ? (r() < 0.3 ? keys[r() < 0.5 ? 0 : keys.length - 1]! : pick(r, keys)) : undefined;
    if (roll < 0.4 && existing) next[existing] = entry(r, i);
    else if (roll < 0.6 && existing) delete next[existing];
    else if (roll < 0.65 && existing)
      next[existing] = { ...previous[existing] }; // the same text, a new object
    else next[repoKey(r)] = entry(r, 1000 + i);
  }
  return next;
}

test('a manifest spliced from the previous text is the text serialised whole, for random collections and edits', (t) => {
  const r = rng(0x5911ce);
  let spliced = 0;
  for (let round = 0; round < 3000; round += 1) {
    const size = pick(r, [0, 1, 2, 3, 10, 40, 200]);
    const text = manifestText(collection(r, size));
    // what a publish reads: the parse of the text it wrote last
    const previous = JSON.parse(text) as Manifest;
    const next = edited(r, previous);
    const out = spliceManifestText(text, previous, next);
    if (out === null) continue;
    spliced += 1;
    if (out !== manifestText(next)) {
      t.fail(
        `round ${round}: spliced text differs from the whole:\n${JSON.stringify(out)}\n${JSON.stringify(manifestText(next))}`,
      );
      return;
    }
  }
  // the fallback (an empty previous manifest, keys JavaScript orders first) stays rare
  t.true(spliced > 2500, `spliced ${spliced} of 3000`);
});

test('a splice leaves to the whole serialisation what it cannot place: array-index keys, __proto__, many changes, a text of another layout', (t) => {
  const base: Manifest = { '/a': { modified: 1 }, '/b': { modified: 2 } };
  const text = manifestText(base);
  const previous = JSON.parse(text) as Manifest;
  t.is(spliceManifestText(text, previous, { ...previous, '12': { modified: 3 } }), null);
  const proto: Manifest = { ...previous };
  Object.defineProperty(proto, '__proto__', { value: { modified: 3 }, enumerable: true });
  t.is(spliceManifestText(text, previous, proto), null);
  const many = { ...previous };
  for (let i = 0; i < 100; i += 1) many[`/r${i}`] = { modified: i };
  t.is(spliceManifestText(text, previous, many), null);
  t.is(spliceManifestText(JSON.stringify(base), previous, { ...previous, '/c': {} }), null);
  t.is(spliceManifestText('{}\n', {}, { '/c': {} }), null);
  t.is(spliceManifestText(text, previous, { ...previous }), text);
});

test('a hook-style write splices into the manifest the last write left and writes the bytes of a whole serialisation', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bm-splice-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'manifest.js.gz');
  const r = rng(17);
  await writeManifestIfChanged(file, collection(r, 300), null, { restamp: false, now: 0 });
  for (let round = 0; round < 20; round += 1) {
    const previous = await readPublishedManifestText(file);
    t.truthy(previous?.ownText, 'the digest proves the file is the last write');
    const next = edited(r, previous!.manifest);
    await writeManifestIfChanged(file, next, null, { restamp: false, now: 0, previous });
    t.deepEqual(await readFile(file), serializeManifest(next));
  }
  // a file changed behind the writer's back is read entry by entry, and never spliced into
  await writeFile(file, serializeManifest({ '/x': { modified: 1 } }));
  const other = await readPublishedManifestText(file);
  t.is(other?.ownText, null);
});
