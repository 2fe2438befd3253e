import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestText, serializeManifest, type Manifest } from '../src/manifest/manifest.js';
import { spliceManifest } from '../src/manifest/manifest-splice.js';
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

/** A copy of `previous` with a few entries changed, added and removed, as a publish makes it, and the keys it named. */
function edited(r: Rand, previous: Manifest): { next: Manifest; changed: string[] } {
  const next = { ...previous };
  const changed: string[] = [];
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
    else if (roll < 0.7) {
      // named and left alone, or named and in neither: a failed repository, one without refs
      const key = r() < 0.5 && existing ? existing : repoKey(r);
      if (!Object.hasOwn(previous, key)) delete next[key];
      changed.push(key);
      continue;
    } else {
      const key = repoKey(r);
      next[key] = entry(r, 1000 + i);
      changed.push(key);
      continue;
    }
    changed.push(existing);
  }
  return { next, changed };
}

test('a manifest spliced from the previous text is the text serialised whole, for random collections and edits', (t) => {
  const r = rng(0x5911ce);
  let spliced = 0;
  for (let round = 0; round < 3000; round += 1) {
    const size = pick(r, [0, 1, 2, 3, 10, 40, 200]);
    const text = manifestText(collection(r, size));
    // what a publish reads: the parse of the text it wrote last
    const previous = JSON.parse(text) as Manifest;
    const { next, changed } = edited(r, previous);
    const out = spliceManifest(Buffer.from(text), previous, next, changed)?.toString('utf8');
    if (out === undefined) continue;
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

test('a splice leaves to the whole serialisation what it cannot place: array-index keys, __proto__, many changes, JSON of another layout', (t) => {
  const base: Manifest = { '/a': { modified: 1 }, '/b': { modified: 2 } };
  const json = Buffer.from(manifestText(base));
  const previous = JSON.parse(json.toString()) as Manifest;
  t.is(spliceManifest(json, previous, { ...previous, '12': { modified: 3 } }, ['12']), null);
  const proto: Manifest = { ...previous };
  Object.defineProperty(proto, '__proto__', { value: { modified: 3 }, enumerable: true });
  t.is(spliceManifest(json, previous, proto, ['__proto__']), null);
  const many = { ...previous };
  for (let i = 0; i < 100; i += 1) many[`/r${i}`] = { modified: i };
  t.is(spliceManifest(json, previous, many, Object.keys(many)), null);
  t.is(spliceManifest(Buffer.from(JSON.stringify(base)), previous, { ...previous, '/c': {} }, ['/c']), null);
  t.is(spliceManifest(Buffer.from('{}\n'), {}, { '/c': {} }, ['/c']), null);
  const numbered = Buffer.from(manifestText({ '7': {}, '/a': {} }));
  t.is(spliceManifest(numbered, JSON.parse(numbered.toString()) as Manifest, { '7': {} }, ['/a']), null);
  t.is(spliceManifest(json, previous, { ...previous }, ['/zz']), json);
});

test('a hook-style write splices into the manifest the last write left and writes the bytes of a whole serialisation', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bm-splice-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'manifest.js.gz');
  const r = rng(17);
  await writeManifestIfChanged(file, collection(r, 300), null, { restamp: false, now: 0 });
  for (let round = 0; round < 20; round += 1) {
    const read = await readPublishedManifestText(file);
    t.truthy(read?.ownJson, 'the digest proves the file is the last write');
    const { next, changed } = edited(r, read!.manifest);
    await writeManifestIfChanged(file, next, null, { restamp: false, now: 0, previous: { read, changed } });
    t.deepEqual(await readFile(file), serializeManifest(next));
  }
  // a file changed behind the writer's back is read entry by entry, and never spliced into
  await writeFile(file, serializeManifest({ '/x': { modified: 1 } }));
  const other = await readPublishedManifestText(file);
  t.is(other?.ownJson, null);
});
