/**
 * Pack files, read and written around git rather than through it: the
 * 12-byte header, each object's header (type, and for an OFS_DELTA where
 * its base is), and the two git commands that give an origin a pack with
 * the offset of every object without inflating anything in JavaScript
 * (`pack-objects` to a file writes the .idx; `show-index` lists it).
 *
 * Used to publish a base whose pack a replica can index in parts while it
 * downloads (origin/parted-base.ts, replica/sync/part-indexer.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { BundlemirrorError } from '../errors.js';
import { git, gitText } from './exec.js';
import { isObjectId, oidKey } from './refname.js';

export const PACK_HEADER_SIZE = 12;

/** What to do about a pack git wrote but we cannot use: the repository keeps what it had published. */
export const PACK_HINT =
  'its previously published bundles stay listed; check the repository with git fsck and the git version (git --version), then publish again';
export const PACK_TRAILER_SIZE = 20;

export const OBJ_COMMIT = 1;
export const OBJ_TREE = 2;
export const OBJ_BLOB = 3;
export const OBJ_TAG = 4;
export const OBJ_OFS_DELTA = 6;

/** `PACK`, version 2, `count` objects. */
export function packHeader(count: number): Buffer {
  const b = Buffer.alloc(PACK_HEADER_SIZE);
  b.write('PACK', 0, 'latin1');
  b.writeUInt32BE(2, 4);
  b.writeUInt32BE(count, 8);
  return b;
}

/**
 * A pack of `count` objects whose bytes are `objects` (whole objects, one
 * after another): its header, those bytes, and the SHA-1 trailer over
 * both. When `objects` throws, the trailer is never sent, and git fails
 * the pack.
 */
export async function* framedPack(count: number, objects: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const sha1 = createHash('sha1');
  const head = packHeader(count);
  sha1.update(head);
  yield head;
  for await (const bytes of objects) {
    sha1.update(bytes);
    yield bytes;
  }
  yield sha1.digest();
}

/** The object count of a pack header, or null when these are not the first bytes of a version 2 or 3 pack. */
export function packObjectCount(header: Buffer): number | null {
  if (header.length < PACK_HEADER_SIZE || header.toString('latin1', 0, 4) !== 'PACK') return null;
  const version = header.readUInt32BE(4);
  return version === 2 || version === 3 ? header.readUInt32BE(8) : null;
}

/** Longest object header: a type/size varint of at most 10 bytes and an offset varint of at most 10. */
export const MAX_OBJECT_HEADER = 20;

export interface ObjectHeader {
  type: number;
  /** Bytes of the type-and-size varint that starts the header. */
  sizeLength: number;
  /** Bytes of the whole header: the varint, and for an OFS_DELTA its base offset. */
  headerLength: number;
  /** For an OFS_DELTA: the pack offset of its base. */
  baseOffset: number | null;
}

/**
 * The header of the object at pack offset `offset`, read from `buf` at
 * `at`; null when it does not parse (a truncated buffer, an offset
 * pointing nowhere).
 */
export function readObjectHeader(buf: Buffer, at: number, offset: number): ObjectHeader | null {
  let p = at;
  const byte = () => (p < buf.length ? buf[p++]! : -1);
  let c = byte();
  if (c < 0) return null;
  const type = (c >> 4) & 7;
  for (let n = 0; c & 0x80; n++) {
    if (n > 9) return null;
    c = byte();
    if (c < 0) return null;
  }
  const sizeLength = p - at;
  if (type !== OBJ_OFS_DELTA) return { type, sizeLength, headerLength: sizeLength, baseOffset: null };
  c = byte();
  if (c < 0) return null;
  let rel = c & 0x7f;
  for (let n = 0; c & 0x80; n++) {
    if (n > 8) return null;
    c = byte();
    if (c < 0) return null;
    rel = (rel + 1) * 128 + (c & 0x7f);
  }
  const base = offset - rel;
  return rel > 0 && base >= PACK_HEADER_SIZE ? { type, sizeLength, headerLength: p - at, baseOffset: base } : null;
}

/** An OFS_DELTA's distance back to its base, encoded as git does (big-endian base-128, each continuation minus one). */
export function encodeDeltaOffset(rel: number): Buffer {
  const out = [rel % 128];
  let n = Math.floor(rel / 128);
  while (n > 0) {
    n -= 1;
    out.unshift(0x80 | (n % 128));
    n = Math.floor(n / 128);
  }
  return Buffer.from(out);
}

/**
 * Packs every object reachable from `tips` into `<base>-<hash>.pack` and
 * its `.idx` (OFS_DELTA bases, the repository's bitmap when it has one,
 * as `git bundle create` does) and returns the two paths.
 */
export async function packObjectsToFile(
  gitDir: string,
  tips: readonly string[],
  base: string,
  repo?: string,
): Promise<{ pack: string; idx: string }> {
  // the pack is a temporary file, copied into the bundle (which is synced): no fsync of it
  const args = ['-c', 'core.fsync=none', 'pack-objects', '--revs', '--use-bitmap-index', '--delta-base-offset', '-q'];
  const hash = await gitText([...args, base], {
    gitDir,
    repo,
    input: tips.filter(isObjectId).join('\n') + '\n',
  });
  if (!isObjectId(hash))
    throw new BundlemirrorError(
      'E_GIT',
      `git pack-objects printed ${JSON.stringify(hash.slice(0, 80))}, not a pack name`,
      {
        repo,
        hint: PACK_HINT,
      },
    );
  return { pack: `${base}-${hash}.pack`, idx: `${base}-${hash}.idx` };
}

/** Every object an .idx lists (`git show-index`): its pack offset and the `oidKey` of its id, by ascending offset. */
export async function packIndexEntries(idxFile: string, repo?: string): Promise<{ offset: number; key: number }[]> {
  const r = await git(['show-index'], { repo, stdin: createReadStream(idxFile) });
  const out = r.stdout.toString('latin1');
  const entries: { offset: number; key: number }[] = [];
  let start = 0;
  while (start < out.length) {
    let end = out.indexOf('\n', start);
    if (end < 0) end = out.length;
    // "<offset> <oid> (<crc32>)"
    const sp = out.indexOf(' ', start);
    if (sp > start && sp < end) entries.push({ offset: Number(out.slice(start, sp)), key: oidKey(out, sp + 1) });
    start = end + 1;
  }
  return entries.sort((a, b) => a.offset - b.offset);
}
