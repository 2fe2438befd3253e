/**
 * A base bundle whose pack a replica can index in parts while it
 * downloads, at no byte cost: the same objects and deltas as one pack,
 * laid out blobs first, then trees, then commits and tags, and described
 * in index.json as a few byte ranges ("parts") that each resolve alone.
 *
 * Why that order: git resolves a pack's deltas only after its last byte,
 * so one pack leaves all of the resolution after the download. A pack's
 * object order is free as long as every OFS_DELTA base comes before its
 * delta, and deltas are always between objects of one type; so objects
 * keep their order within each kind, and only a delta whose distance to
 * its base changed gets its header rewritten (the compressed data is
 * copied as it is). In that order every link an object has
 * (a commit to its tree and parents, a tree to its entries, a tag to its
 * object) points into its own part or an earlier one, so a replica that
 * indexes part k with `index-pack --check-self-contained-and-connected`
 * proves each link present, and the whole base connected, part by part.
 * Part boundaries are where no delta crosses: between the kinds of object,
 * and between delta families inside the big blob section and inside the
 * trees, which come by level, deepest first, a big level in two halves a
 * replica indexes side by side (`after`, see planPackLayout).
 *
 * Where the offsets come from: `git pack-objects` writes the pack to a
 * file with its .idx (`git show-index` lists each object's offset), and
 * each object's first bytes give its type and delta base; nothing is
 * inflated here. The bundle is then written from the pack's byte ranges in
 * the new order with a new SHA-1 trailer: one extra read and write of the
 * pack against `git bundle create`. A pack that cannot be laid out so (a
 * REF_DELTA) is published as git wrote it, in one piece. It stays an ordinary
 * bundle for stock git (`git clone --bundle-uri`, `git bundle unbundle`).
 */
import { createHash } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { tempPathFor } from '../fs/atomic.js';
import {
  MAX_OBJECT_HEADER,
  OBJ_BLOB,
  OBJ_COMMIT,
  OBJ_OFS_DELTA,
  OBJ_TAG,
  OBJ_TREE,
  PACK_HEADER_SIZE,
  PACK_HINT,
  PACK_TRAILER_SIZE,
  encodeDeltaOffset,
  packIndexEntries,
  packObjectsToFile,
  readObjectHeader,
} from '../git/pack.js';
import { treeDepths } from '../git/history.js';
import { headObject, type Ref } from '../git/repo.js';
import { BundlemirrorError } from '../errors.js';
import { MAX_PACK_PARTS, type PackPart } from '../manifest/repo-index.js';
import { commitBundleFile, type WrittenBundle } from './bundle-writer.js';

export interface PartsPolicy {
  /** Most parts per base; below 2 a base is one pack. */
  parts: number;
  /** A repository storing fewer bytes than this gets a base in one piece (its resolution is short anyway). */
  partsMinBytes: number;
}

export const DEFAULT_PARTS = 12;
export const DEFAULT_PARTS_MIN_BYTES = 8 << 20;

/** Sections in the order they are written: blobs, trees, then commits and tags. */
const SECTION: Record<number, number> = { [OBJ_BLOB]: 0, [OBJ_TREE]: 1, [OBJ_COMMIT]: 2, [OBJ_TAG]: 2 };

export interface PackedObject {
  offset: number;
  end: number;
  type: number;
  /** Bytes of the type-and-size varint, and of the whole object header. */
  sizeLength: number;
  headerLength: number;
  baseOffset: number | null;
}

/** What the new pack is made of, after its 12-byte header: byte ranges of the old pack, and new delta headers. */
export type Segment =
  { copy: [start: number, end: number] } | { header: { from: number; sizeLength: number; deltaOffset: number } };

export interface PackLayout {
  segments: Segment[];
  /**
   * The parts, as pack offsets in the new layout; `after` (when set) is how
   * many leading parts must be in the repository before this one's links
   * can be proved, where the default is every part before it.
   */
  parts: { start: number; end: number; objects: number; after?: number }[];
}

/** A level of trees at least this big, and an eighth of all trees' bytes, is cut in two parts indexed side by side. */
const TREE_SPLIT_MIN_BYTES = 16 << 10;

/**
 * The new order and its parts for a pack's objects (ascending offsets), or
 * null when the pack cannot be laid out so (a REF_DELTA, an unknown type)
 * or does not split into at least two parts.
 *
 * Objects keep their order within a section, so every delta still follows
 * its base (deltas are always within one type). A delta whose distance to
 * its base changes gets a new header; its length can change the distances
 * after it, so positions are recomputed until they settle.
 *
 * `treeDepth(i)`, when given, is the depth at which the walk met tree `i`
 * (-1 when unknown). The trees are then ordered deepest first, each delta
 * family whole at the depth most of its trees have: a tree links only to
 * trees one level deeper, so a big level can be cut in two parts that need
 * only what comes before the level and are indexed side by side. That
 * takes the trees, whose link checks git makes one at a time, off one core
 * (a tree met at two depths can link into the other half: the replica's
 * check then refuses that half, and indexes it again once the other is in).
 */
export function planPackLayout(
  objects: readonly PackedObject[],
  maxParts: number,
  treeDepth?: (i: number) => number,
): PackLayout | null {
  const n = objects.length;
  if (n < 2 || maxParts < 2) return null;
  const section = new Int8Array(n);
  const base = new Int32Array(n).fill(-1);
  for (const [i, o] of objects.entries()) {
    if (o.type === OBJ_OFS_DELTA) {
      // a base comes before its delta: found among the objects before it (a search, not a map of every offset)
      const b = o.baseOffset === null ? -1 : objectAt(objects, o.baseOffset, i);
      if (b < 0) return null;
      base[i] = b;
      section[i] = section[b]!;
    } else {
      const s = SECTION[o.type];
      if (s === undefined) return null;
      section[i] = s;
    }
  }
  const trees = treeDepth ? treesByDepth(section, base, treeDepth) : null;
  const seq: number[] = [];
  for (let i = 0; i < n; i++) if (section[i] === 0) seq.push(i);
  if (trees) for (const i of trees.order) seq.push(i);
  else for (let i = 0; i < n; i++) if (section[i] === 1) seq.push(i);
  for (let i = 0; i < n; i++) if (section[i] === 2) seq.push(i);
  const position = new Int32Array(n);
  seq.forEach((i, j) => (position[i] = j));

  // where each object lands, with each moved delta's header re-encoded
  const headerLength = Int32Array.from(objects, (o) => o.headerLength);
  const at = new Float64Array(n + 1);
  for (let round = 0; ; round++) {
    if (round === 8) return null;
    at[0] = PACK_HEADER_SIZE;
    for (let j = 0; j < n; j++) {
      const o = objects[seq[j]!]!;
      at[j + 1] = at[j]! + headerLength[seq[j]!]! + (o.end - o.offset - o.headerLength);
    }
    let settled = true;
    for (let i = 0; i < n; i++) {
      if (base[i]! < 0) continue;
      const want = objects[i]!.sizeLength + deltaOffsetLength(at[position[i]!]! - at[position[base[i]!]!]!);
      if (want !== headerLength[i]) {
        headerLength[i] = want;
        settled = false;
      }
    }
    if (settled) break;
  }

  const segments: Segment[] = [];
  for (let j = 0; j < n; j++) {
    const i = seq[j]!;
    const o = objects[i]!;
    const rel = base[i]! >= 0 ? at[j]! - at[position[base[i]!]!]! : null;
    let from = o.offset;
    if (rel !== null && rel !== o.offset - o.baseOffset!) {
      segments.push({ header: { from: o.offset, sizeLength: o.sizeLength, deltaOffset: rel } });
      from = o.offset + o.headerLength;
    }
    const last = segments[segments.length - 1];
    if (last && 'copy' in last && last.copy[1] === from) last.copy[1] = o.end;
    else segments.push({ copy: [from, o.end] });
  }

  // a cut before j is allowed when no delta spans it: open[j] === 0
  const open = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) {
    if (base[i]! < 0) continue;
    open[position[base[i]!]! + 1]! += 1;
    open[position[i]! + 1]! -= 1;
  }
  for (let j = 1; j <= n; j++) open[j]! += open[j - 1]!;
  const size = (j: number) => at[j + 1]! - at[j]!;
  // The blob section is cut into parts of about equal size at family boundaries; the trees are one part, or
  // their levels as below; the commits and tags one part (trees and commits arrive last: what is left to
  // resolve after the last byte).
  const starts = [0, 1, 2].map((s) => seq.findIndex((i) => section[i] === s)).filter((j) => j >= 0);
  const blobEnd = section[seq[0]!] === 0 ? (starts[1] ?? n) : 0;
  const treeStart = seq.findIndex((i) => section[i] === 1);
  const budget = Math.min(maxParts, MAX_PACK_PARTS);
  let treeCuts: { at: number; beside: boolean }[] = [];
  if (trees && treeStart >= 0) {
    treeCuts = treeLevelCuts(trees.levels, treeStart, at, open);
    const others = starts.filter((j) => j > treeStart).length;
    if (budget < (blobEnd > 0 ? 1 : 0) + treeCuts.length + 1 + others) treeCuts = [];
  }
  const fixed = [...starts.slice(1), ...treeCuts.map((c) => c.at)];
  const blobParts = Math.max(1, budget - fixed.length - 1);
  const target = (at[blobEnd]! - at[0]!) / blobParts;
  let partBytes = 0;
  const cuts: number[] = [];
  for (let j = 0; j < blobEnd; j++) {
    if (j > 0 && open[j] === 0 && partBytes >= target && cuts.length < blobParts - 1) {
      cuts.push(j);
      partBytes = 0;
    }
    partBytes += size(j);
  }
  cuts.push(...fixed);
  cuts.sort((a, b) => a - b);
  if (budget < cuts.length + 1) cuts.splice(0, cuts.length + 1 - budget);
  if (cuts.length === 0) return null;
  const beside = new Set(treeCuts.filter((c) => c.beside).map((c) => c.at));
  const parts = [0, ...cuts].map((from, k) => {
    const to = cuts[k] ?? n;
    const part = { start: at[from]!, end: at[to]!, objects: to - from };
    // the second half of a level needs only the parts before the first half
    return beside.has(from) ? { ...part, after: k - 1 } : part;
  });
  return { segments, parts };
}

interface TreeLevels {
  /** The trees' object numbers in their new order: deepest level first, each delta family together. */
  order: number[];
  /** Each level's end, as a count of trees into `order`. */
  levels: number[];
}

/** The trees ordered by depth, deepest first, each delta family whole at the depth most of its trees were met at. */
function treesByDepth(section: Int8Array, base: Int32Array, treeDepth: (i: number) => number): TreeLevels {
  const n = section.length;
  const family = new Int32Array(n).fill(-1);
  const met = new Int32Array(n).fill(-1);
  const members: number[] = [];
  for (let i = 0; i < n; i++) {
    if (section[i] !== 1) continue;
    family[i] = base[i]! >= 0 ? family[base[i]!]! : i;
    met[i] = treeDepth(i);
    members.push(i);
  }
  // each family's depth, by one pass over its trees sorted by depth: the longest run wins, the shallower
  // on a tie; a family met at no known depth goes last, with the root trees (depth 0): a check that
  // fails there costs the least
  const familyDepth = new Int32Array(n);
  const byFamily = members.slice().sort((a, b) => family[a]! - family[b]! || met[a]! - met[b]!);
  let best = 0;
  let most = 0;
  for (let k = 0; k < byFamily.length;) {
    const i = byFamily[k]!;
    let run = 1;
    while (family[byFamily[k + run]!] === family[i] && met[byFamily[k + run]!] === met[i]) run += 1;
    if (met[i]! >= 0 && run > most) [best, most] = [met[i]!, run];
    k += run;
    if (family[byFamily[k]!] !== family[i]) {
      familyDepth[family[i]!] = best;
      [best, most] = [0, 0];
    }
  }
  const depth = (i: number) => familyDepth[family[i]!]!;
  const order = members.sort((a, b) => depth(b) - depth(a) || family[a]! - family[b]! || a - b);
  const levels: number[] = [];
  order.forEach((i, k) => {
    const next = order[k + 1];
    if (next === undefined || depth(next) !== depth(i)) levels.push(k + 1);
  });
  return { order, levels };
}

/**
 * Where the trees section is cut: a level holding at least an eighth of the
 * trees' bytes (and TREE_SPLIT_MIN_BYTES) becomes two parts, `beside` the
 * cut between them, at the family boundary nearest its middle; the levels
 * between such ones are one part each run.
 */
function treeLevelCuts(
  levels: readonly number[],
  treeStart: number,
  at: Float64Array,
  open: Int32Array,
): { at: number; beside: boolean }[] {
  const end = treeStart + levels[levels.length - 1]!;
  const minBytes = Math.max(TREE_SPLIT_MIN_BYTES, (at[end]! - at[treeStart]!) / 8);
  const cuts: { at: number; beside: boolean }[] = [];
  let from = treeStart;
  for (const level of levels) {
    const to = treeStart + level;
    const middle = (at[from]! + at[to]!) / 2;
    let mid = -1;
    for (let j = from + 1; j < to; j++)
      if (open[j] === 0 && (mid < 0 || Math.abs(at[j]! - middle) < Math.abs(at[mid]! - middle))) mid = j;
    if (at[to]! - at[from]! >= minBytes && mid > 0) {
      const last = cuts[cuts.length - 1]?.at ?? treeStart;
      if (from > treeStart && last !== from) cuts.push({ at: from, beside: false });
      cuts.push({ at: mid, beside: true });
      if (to < end) cuts.push({ at: to, beside: false });
    }
    from = to;
  }
  return cuts;
}

/** The number of the object at `offset` among `objects[0, below)` (ascending offsets), or -1. */
function objectAt(objects: readonly PackedObject[], offset: number, below: number): number {
  let lo = 0;
  let hi = below - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const at = objects[mid]!.offset;
    if (at === offset) return mid;
    if (at < offset) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function deltaOffsetLength(rel: number): number {
  let len = 1;
  for (let n = Math.floor(rel / 128); n > 0; n = Math.floor((n - 1) / 128)) len += 1;
  return len;
}

/** Every object of the pack with its type and delta base, from the object headers at `offsets`. */
async function readPackedObjects(
  fh: FileHandle,
  offsets: readonly number[],
  packSize: number,
  repo: string,
): Promise<PackedObject[]> {
  const out: PackedObject[] = [];
  const trailerAt = packSize - PACK_TRAILER_SIZE;
  const buf = Buffer.alloc(4 << 20);
  let i = 0;
  while (i < offsets.length) {
    const from = offsets[i]!;
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, packSize - from), from);
    const readTo = from + bytesRead;
    const startedAt = i;
    while (i < offsets.length && (offsets[i]! + MAX_OBJECT_HEADER <= readTo || readTo === packSize)) {
      const offset = offsets[i]!;
      const h = readObjectHeader(buf.subarray(0, bytesRead), offset - from, offset);
      if (!h) throw unreadable(offset, repo);
      out.push({ offset, end: offsets[i + 1] ?? trailerAt, ...h });
      i += 1;
    }
    if (i === startedAt) throw unreadable(from, repo);
  }
  return out;
}

function unreadable(offset: number, repo: string): BundlemirrorError {
  return new BundlemirrorError(
    'E_GIT',
    `git pack-objects wrote a pack whose object at ${offset} has no readable header`,
    {
      repo,
      hint: PACK_HINT,
    },
  );
}

/** The bundle header `git bundle create --all` writes: every ref, then HEAD. */
function bundleHeader(refs: readonly Ref[], head: string | null): Buffer {
  const lines = ['# v2 git bundle', ...refs.map((r) => `${r.oid} ${r.name}`)];
  if (head) lines.push(`${head} HEAD`);
  return Buffer.from(lines.join('\n') + '\n\n', 'utf8');
}

export interface PartedBundle extends WrittenBundle {
  /** Null when the pack could not be cut (it is then one piece, as git wrote it). */
  parts: PackPart[] | null;
}

/**
 * Writes a base bundle of `refs` (the repository's refs as just read, and
 * HEAD) whose pack is laid out and described in parts as above, into
 * `outDir` under its content-addressed name.
 */
export async function writePartedBase(
  gitDir: string,
  outDir: string,
  refs: readonly Ref[],
  head: string | null,
  maxParts: number,
  repo: string,
): Promise<PartedBundle> {
  await mkdir(outDir, { recursive: true });
  const headOid = headObject(refs, head);
  const tips = [...new Set([...refs.map((r) => r.oid), ...(headOid ? [headOid] : [])])];
  // the trees' depths come from a walk of their own, beside pack-objects on the other core; without them
  // (git failed) the trees are one part, as the layout was before levels
  const depths = treeDepths(gitDir, tips, repo).catch(() => null);
  const { pack, idx } = await packObjectsToFile(gitDir, tips, tempPathFor(join(outDir, 'pack')), repo).catch(
    async (err: unknown) => {
      await depths; // no git of ours outlives a failed publish
      throw err;
    },
  );
  const tmp = tempPathFor(join(outDir, 'bundle'));
  try {
    const src = await open(pack, 'r');
    let layout: PackLayout | null;
    const header = bundleHeader(refs, headOid);
    const sha256 = createHash('sha256');
    let size = 0;
    const out = await open(tmp, 'w', 0o644);
    try {
      const packSize = (await src.stat()).size;
      const entries = await packIndexEntries(idx, repo);
      const objects = await readPackedObjects(
        src,
        entries.map((e) => e.offset),
        packSize,
        repo,
      );
      const depth = await depths;
      layout = planPackLayout(objects, maxParts, depth ? (i) => depth.get(entries[i]!.key) ?? -1 : undefined);
      const segments: Segment[] = layout?.segments ?? [{ copy: [PACK_HEADER_SIZE, packSize - PACK_TRAILER_SIZE] }];
      const packHash = createHash('sha1');
      const put = async (bytes: Buffer, inPack: boolean) => {
        sha256.update(bytes);
        if (inPack) packHash.update(bytes);
        await out.write(bytes);
        size += bytes.length;
      };
      await put(header, false);
      const first = Buffer.alloc(PACK_HEADER_SIZE);
      await src.read(first, 0, PACK_HEADER_SIZE, 0);
      await put(first, true);
      const buf = Buffer.alloc(1 << 20);
      for (const seg of segments) {
        if ('header' in seg) {
          // the object's type and size as they were, then its base's new distance
          const { from, sizeLength } = seg.header;
          const typeSize = Buffer.alloc(sizeLength);
          await src.read(typeSize, 0, sizeLength, from);
          await put(Buffer.concat([typeSize, encodeDeltaOffset(seg.header.deltaOffset)]), true);
          continue;
        }
        const [start, end] = seg.copy;
        for (let at = start; at < end;) {
          const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, end - at), at);
          if (bytesRead === 0)
            throw new BundlemirrorError('E_GIT', 'the pack git wrote shrank while it was read', {
              repo,
              hint: PACK_HINT,
            });
          await put(buf.subarray(0, bytesRead), true);
          at += bytesRead;
        }
      }
      await put(packHash.digest(), false);
    } finally {
      await src.close();
      await out.close();
    }
    const written = await commitBundleFile(tmp, outDir, sha256.digest('hex'), size);
    const parts = layout
      ? layout.parts.map((p) => ({
          offset: header.length + p.start,
          size: p.end - p.start,
          objects: p.objects,
          ...(p.after === undefined ? {} : { after: p.after }),
        }))
      : null;
    return { ...written, parts };
  } finally {
    await depths;
    const rev = pack.replace(/\.pack$/, '.rev');
    await Promise.all([tmp, pack, idx, rev].map((f) => rm(f, { force: true })));
  }
}
