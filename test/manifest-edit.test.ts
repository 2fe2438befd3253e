import test from 'ava';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { parseManifest, serializeManifest, type Manifest, type ParsedManifest } from '../src/manifest/manifest.js';
import { parseManifestEdit } from '../src/manifest/manifest-edit.js';
import { seededRandom as rng } from '../src/faults/random.js';

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** Text that a separator search could trip on: commas, quotes, braces, escapes, the separator itself. */
function oddText(r: Rand): string {
  const bits = [',', '"', '{', '}', '\\', '\n', ',\n "', '", "', 'é', '\u2028', 'x', ' ', ':', '/pub/r1.git'];
  let s = '';
  for (let i = Math.floor(r() * 8); i > 0; i -= 1) s += pick(r, bits);
  return s;
}

function entry(r: Rand, i: number): Manifest[string] {
  const e: Manifest[string] = { modified: 1_700_000_000 + i, fingerprint: sha1(`${i}:${r()}`) };
  if (r() < 0.7) e.head = 'ref: refs/heads/main';
  if (r() < 0.7) e.description = r() < 0.5 ? `repository ${i}` : oddText(r);
  if (r() < 0.3) e.owner = oddText(r);
  if (r() < 0.2) e.symlinks = [`/pub/link${i}.git`];
  if (r() < 0.2) e.reference = null;
  return e;
}

function collection(r: Rand, n: number): Manifest {
  const m: Manifest = {};
  for (let i = 0; i < n; i += 1) m[`/pub/r${Math.floor(r() * 1000)}.git`] = entry(r, i);
  return m;
}

/** The layouts manifests come in: ours (sorted, indent 1, gzip), compact, wider indents, plain JSON. */
const LAYOUTS: ((m: Manifest) => Buffer)[] = [
  (m) => serializeManifest(m),
  (m) => Buffer.from(JSON.stringify(m)),
  (m) => gzipSync(JSON.stringify(m, null, 2)),
  (m) => Buffer.from(JSON.stringify(m, null, '\t') + '\n'),
];

/** A text edit that may make anything: duplicates, garbage, unknown keys, refused entries, broken JSON. */
function rawEdit(r: Rand, text: string): string {
  const at = Math.floor(r() * (text.length + 1));
  const kinds: (() => string)[] = [
    () => text.slice(0, at) + pick(r, [',', '"', '{', '}', ' ', '\n', 'x', ':', '[']) + text.slice(at),
    () => text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 20)),
    () => {
      // the first entry again, somewhere: a key listed twice
      const m = /"(\/[^"]*)": (\{[^}]*\})/.exec(text) ?? /"(\/[^"]*)":(\{[^}]*\})/.exec(text);
      if (!m) return text;
      const i = text.indexOf(',', Math.floor(r() * text.length));
      return i === -1 ? text : `${text.slice(0, i)},"${m[1]}":${m[2]}${text.slice(i)}`;
    },
    () =>
      text.replace(
        /"fingerprint": ?"[0-9a-f]{40}"/,
        `"fingerprint":${pick(r, ['"XYZ"', 'null', '7', '"' + 'a'.repeat(40) + '"'])}`,
      ),
    () =>
      text.replace(
        /"modified": ?\d+/,
        `"modified":1,"extra":{"a":[1,{"b":"${oddText(r).replace(/["\\\n\u2028]/g, '')}"}]}`,
      ),
    () =>
      text.replace(/("\/pub\/r\d+\.git": ?\{)/, '$1"modified":2,"fingerprint":"' + 'b'.repeat(40) + '","modified":3,'),
    () => text.replace(/"\/pub\/r(\d+)\.git"/, `"/pub/../r$1.git"`),
    // an entry taken out, its separators left: ", ," or "{ ," or ", }"
    () => {
      const all = [...text.matchAll(/"\/pub\/r\d+\.git": ?\{[^}]*\}/g)];
      if (!all.length) return text;
      const m = pick(r, all);
      return text.slice(0, m.index) + pick(r, ['', ' ', '\n ']) + text.slice(m.index + m[0].length);
    },
  ];
  return pick(r, kinds)();
}

function edit(r: Rand, m: Manifest): Manifest {
  const next: Manifest = structuredClone(m);
  const keys = Object.keys(next);
  for (let k = 1 + Math.floor(r() * 3); k > 0; k -= 1) {
    const what = r();
    if (what < 0.5 && keys.length) {
      const p = pick(r, keys);
      next[p] = { ...next[p]!, ...entry(r, 5000 + k) };
      if (r() < 0.3) delete next[p]!.description;
    } else if (what < 0.75) next[`/pub/new${Math.floor(r() * 1000)}.git`] = entry(r, 9000 + k);
    else if (keys.length) delete next[pick(r, keys)];
  }
  return next;
}

const canonical = (m: Manifest) => serializeManifest(m).toString('base64');
const sortedProblems = (p: ParsedManifest['problems']) =>
  p.map((x) => `${x.path}\t${x.problem}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** The edit reading must equal the full reading whenever it answers, and name every entry that differs. */
function agree(t: import('ava').ExecutionContext, settled: Manifest, settledBytes: Buffer, bytes: Buffer): boolean {
  let full: ReturnType<typeof parseManifest> | null = null;
  try {
    full = parseManifest(bytes);
  } catch {
    full = null;
  }
  const edit = parseManifestEdit(bytes, settledBytes);
  if (!edit) return false;
  if (!full) {
    t.fail(`the edit reading accepted what the full reading refuses: ${bytes.toString('utf8').slice(0, 200)}`);
    return true;
  }
  t.is(canonical(edit.manifest), canonical(full.manifest));
  t.deepEqual(sortedProblems(edit.problems), sortedProblems(full.problems));
  t.is(edit.plain, full.plain);
  const fullKeys = new Set(Object.keys(full.manifest));
  for (const p of Object.keys(settled)) {
    if (!fullKeys.has(p) && !full.problems.some((x) => x.path === p)) t.true(edit.removed.includes(p), `${p} removed`);
  }
  for (const [p, e] of Object.entries(full.manifest)) {
    if (!settled[p] || JSON.stringify(Object.entries(settled[p]).sort()) !== JSON.stringify(Object.entries(e).sort()))
      t.true(edit.changed.has(p), `${p} changed`);
  }
  for (const p of edit.removed) t.false(fullKeys.has(p));
  // removed: exactly the settled entries the new text no longer has (one there but refused is changed, not removed)
  const inText = new Set([...fullKeys, ...full.problems.map((x) => x.path)]);
  t.deepEqual(
    [...edit.removed].sort(),
    Object.keys(settled)
      .filter((p) => !inText.has(p))
      .sort(),
  );
  return true;
}

test('an edited manifest read as an edit equals the full reading, entry for entry', (t) => {
  const r = rng(4242);
  let answered = 0;
  for (let i = 0; i < 1500; i += 1) {
    const layout = LAYOUTS[i % LAYOUTS.length]!;
    const settled = collection(r, Math.floor(r() * 12));
    const settledBytes = layout(settled);
    if (!parseManifest(settledBytes).plain) continue;
    const next = edit(r, settled);
    if (agree(t, settled, settledBytes, layout(next))) answered += 1;
  }
  // most edits of most layouts are read as edits, or the reading saves nothing
  t.true(answered > 700, `${answered} of 1500 read as edits`);
});

test('raw text edits never make the edit reading differ from the full one', (t) => {
  const r = rng(777);
  for (let i = 0; i < 3000; i += 1) {
    const layout = LAYOUTS[i % LAYOUTS.length]!;
    const settled = collection(r, 1 + Math.floor(r() * 8));
    const settledBytes = layout(settled);
    if (!parseManifest(settledBytes).plain) continue;
    const text = (settledBytes[0] === 0x1f ? gunzipSync(settledBytes) : settledBytes).toString('utf8');
    agree(t, settled, settledBytes, Buffer.from(rawEdit(r, text)));
  }
  t.pass();
});

test('one changed entry of our own layout is always read as an edit, with only that entry changed', (t) => {
  const r = rng(99);
  for (let i = 0; i < 200; i += 1) {
    const settled = collection(r, 2 + Math.floor(r() * 40));
    const keys = Object.keys(settled);
    const p = pick(r, keys);
    const next = { ...settled, [p]: { ...settled[p]!, fingerprint: sha1(`push ${i}`), modified: 1_800_000_000 + i } };
    const edit = parseManifestEdit(serializeManifest(next), serializeManifest(settled));
    t.truthy(edit);
    t.deepEqual([...edit!.changed], [p]);
    t.deepEqual(edit!.removed, []);
    t.is(canonical(edit!.manifest), canonical(parseManifest(serializeManifest(next)).manifest));
  }
});
