/**
 * The layout of a base in parts (`planPackLayout`), on packs described
 * object by object: blobs, then the trees deepest level first with a big
 * level cut in two parts indexed side by side (`after`), then the commits;
 * every delta after its base and inside its part; every object once.
 */
import test from 'ava';
import { OBJ_BLOB, OBJ_COMMIT, OBJ_OFS_DELTA, OBJ_TREE, PACK_HEADER_SIZE } from '../src/git/pack.js';
import { planPackLayout, type PackedObject, type PackLayout } from '../src/origin/parted-base.js';

interface Model {
  type: number;
  /** Index of its delta base in the model, or -1. */
  base: number;
  bytes: number;
  depth: number;
}

/** A pack as git could write it (objects in the model's order), described as planPackLayout reads it. */
function packOf(model: readonly Model[]): PackedObject[] {
  const out: PackedObject[] = [];
  let at = PACK_HEADER_SIZE;
  for (const m of model) {
    const baseOffset = m.base >= 0 ? out[m.base]!.offset : null;
    const headerLength = baseOffset === null ? 2 : 2 + Math.ceil(Math.log2(at - baseOffset + 2) / 7);
    out.push({
      offset: at,
      end: at + headerLength + m.bytes,
      type: m.base >= 0 ? OBJ_OFS_DELTA : m.type,
      sizeLength: 2,
      headerLength,
      baseOffset,
    });
    at += headerLength + m.bytes;
  }
  return out;
}

/** Families of `size` objects of one type: a base, then deltas on the object before. */
function families(type: number, count: number, size: number, bytes: number, depth = -1): Model[] {
  const out: Model[] = [];
  for (let f = 0; f < count; f++)
    for (let k = 0; k < size; k++)
      out.push({ type, base: k === 0 ? -1 : -2, bytes: k === 0 ? bytes * 4 : bytes, depth });
  return out;
}

/** Resolves the "delta on the object before" placeholders once the model is assembled. */
function assemble(...groups: Model[][]): Model[] {
  const all = groups.flat();
  return all.map((m, i) => (m.base === -2 ? { ...m, base: i - 1 } : m));
}

/** The objects (by old offset) in the order the layout writes them. */
function newOrder(pack: readonly PackedObject[], layout: PackLayout): number[] {
  const order: number[] = [];
  for (const seg of layout.segments) {
    if ('header' in seg) {
      order.push(seg.header.from);
      continue;
    }
    const [start, end] = seg.copy;
    for (const o of pack) if (o.offset >= start && o.offset < end) order.push(o.offset);
  }
  return order;
}

/** Each object's part, from the new order and the parts' object counts. */
function partOf(order: readonly number[], layout: PackLayout): Map<number, number> {
  const out = new Map<number, number>();
  let k = 0;
  let left = layout.parts[0]!.objects;
  for (const offset of order) {
    while (left === 0) left = layout.parts[++k]!.objects;
    out.set(offset, k);
    left -= 1;
  }
  return out;
}

const model = () =>
  assemble(
    families(OBJ_BLOB, 6, 10, 4000),
    // interleaved as a walk meets them: trees of every depth mixed
    ...Array.from({ length: 8 }, (_, f) => families(OBJ_TREE, 1, 12, f < 6 ? 900 : 100, f < 6 ? 2 : 1)),
    families(OBJ_TREE, 1, 12, 60, 0),
    families(OBJ_COMMIT, 1, 12, 200),
  );

test('the trees come deepest level first, a big level in two parts side by side, every delta inside its part after its base', (t) => {
  const m = model();
  const pack = packOf(m);
  const layout = planPackLayout(pack, 12, (i) => m[i]!.depth);
  t.truthy(layout);
  const order = newOrder(pack, layout!);
  t.deepEqual(
    [...order].sort((a, b) => a - b),
    pack.map((o) => o.offset),
    'every object exactly once',
  );
  const byOffset = new Map(pack.map((o, i) => [o.offset, i]));
  const parts = partOf(order, layout!);
  const position = new Map(order.map((o, j) => [o, j]));
  for (const o of pack) {
    if (o.baseOffset === null) continue;
    t.true(position.get(o.baseOffset)! < position.get(o.offset)!, 'a delta follows its base');
    t.is(parts.get(o.baseOffset), parts.get(o.offset), 'a delta and its base share a part');
  }
  const kinds = order.map((o) => m[byOffset.get(o)!]!);
  const firstTree = kinds.findIndex((k) => k.type === OBJ_TREE);
  const lastTree = kinds.map((k) => k.type).lastIndexOf(OBJ_TREE);
  t.true(
    kinds.slice(0, firstTree).every((k) => k.type === OBJ_BLOB),
    'blobs first',
  );
  t.true(
    kinds.slice(lastTree + 1).every((k) => k.type === OBJ_COMMIT),
    'commits last',
  );
  const depths = kinds.slice(firstTree, lastTree + 1).map((k) => k.depth);
  t.deepEqual(
    depths,
    [...depths].sort((a, b) => b - a),
    'the deepest trees first',
  );

  // the parts: the depth-2 level (6 families of 12) in two halves, the second needing only what precedes the first
  const treeParts = layout!.parts
    .map((p, k) => ({
      ...p,
      k,
      depth: new Set(order.filter((o) => parts.get(o) === k).map((o) => kinds[position.get(o)!]!.depth)),
    }))
    .filter((p) => order.some((o) => parts.get(o) === p.k && kinds[position.get(o)!]!.type === OBJ_TREE));
  const deepest = treeParts.filter((p) => p.depth.has(2));
  t.is(deepest.length, 2, 'the big level is two parts');
  t.deepEqual(
    deepest.map((p) => p.objects),
    [36, 36],
    'cut at the family boundary in its middle',
  );
  t.is(deepest[0]!.after, undefined, 'the first half needs every part before it');
  t.is(deepest[1]!.after, deepest[0]!.k, 'the second half needs only the parts before the first');
  t.true(
    deepest.every((p) => p.depth.size === 1),
    'a half holds one level',
  );
  for (const [k, p] of layout!.parts.entries())
    if (!deepest.some((d) => d.k === k)) t.is(p.after, undefined, `part ${k} needs every part before it`);
  const blobParts = layout!.parts.filter((_, k) =>
    order.some((o) => parts.get(o) === k && kinds[position.get(o)!]!.type === OBJ_BLOB),
  );
  t.true(blobParts.length >= 2, 'the rest of the budget goes to the blobs');
  t.true(layout!.parts.length <= 12);
});

test('a family met at two depths stays whole, at the depth most of its trees have; unknown depths go last', (t) => {
  const m = model();
  // the first depth-2 family: one of its trees was met at depth 1, and one nowhere
  const first = m.findIndex((x) => x.type === OBJ_TREE);
  m[first + 3] = { ...m[first + 3]!, depth: 1 };
  m[first + 4] = { ...m[first + 4]!, depth: -1 };
  const pack = packOf(m);
  const layout = planPackLayout(pack, 12, (i) => m[i]!.depth);
  const order = newOrder(pack, layout!);
  const family = new Set(pack.slice(first, first + 12).map((o) => o.offset));
  const at = order.map((o, j) => (family.has(o) ? j : -1)).filter((j) => j >= 0);
  t.is(at.length, 12);
  t.is(at[11]! - at[0]!, 11, 'the family is together');
  const byOffset = new Map(pack.map((o, i) => [o.offset, i]));
  const before = m[byOffset.get(order[at[0]! - 1]!)!]!;
  t.true(before.type === OBJ_BLOB || before.depth === 2, 'among the depth-2 trees');
});

test('without depths, or without room in the budget, the trees are one part, as before levels', (t) => {
  const m = model();
  const pack = packOf(m);
  for (const layout of [planPackLayout(pack, 12), planPackLayout(pack, 3, (i) => m[i]!.depth)]) {
    t.truthy(layout);
    const order = newOrder(pack, layout!);
    const parts = partOf(order, layout!);
    const treeParts = new Set(pack.filter((_, i) => m[i]!.type === OBJ_TREE).map((o) => parts.get(o.offset)));
    t.is(treeParts.size, 1);
    t.true(layout!.parts.every((p) => p.after === undefined));
  }
  // without depths the trees keep git's order
  const layout = planPackLayout(pack, 12)!;
  const order = newOrder(pack, layout);
  const trees = pack.filter((_, i) => m[i]!.type === OBJ_TREE).map((o) => o.offset);
  t.deepEqual(
    order.filter((o) => trees.includes(o)),
    trees,
  );
});
