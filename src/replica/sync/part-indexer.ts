/**
 * Indexes a base bundle's pack in the parts its index.json lists
 * (origin/parted-base.ts), each as soon as its bytes are in, so that part
 * k's deltas resolve while part k+1 is still on the wire and only the last
 * parts (trees, commits) are left to do after the last byte.
 *
 * Each part goes to its own `git index-pack --stdin
 * --check-self-contained-and-connected` as a pack of its own: a header
 * made here (`PACK`, version 2, the part's object count), the part's bytes,
 * and a SHA-1 trailer computed here. That flag makes index-pack walk every
 * link of every object (a commit's tree and parents, a tree's entries, a
 * tag's object) and die unless each linked object is in the part or
 * already in the repository; the parts come blobs, trees, commits, and the
 * repository starts empty, so every part proved this way proves the whole
 * base connected. (No `--fix-thin`: a delta whose base is outside its
 * part fails the part.)
 *
 * Part k+1 is fed while part k resolves, but its trailer, after which
 * index-pack resolves and checks links, is sent only once part k's pack is
 * in the repository; at most two index-packs run at once. Parts whose
 * bytes are all on disk when their turn comes (the link is faster than
 * indexing) go to one index-pack together: they are a valid pack as one.
 *
 * Nothing here decides what is trusted: the caller keeps the packs only
 * when the bytes fed are exactly the verified file (stream-index.ts) and
 * calls `drop()` otherwise. Any inconsistency (a header whose count is not
 * the parts' sum, a part git refuses) fails the indexer, never the sync.
 */
import { rm } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { PACK_HEADER_SIZE, PACK_TRAILER_SIZE, packHeader, packObjectCount } from '../../git/pack.js';
import { indexPack, type IndexedPack } from '../../git/repo.js';
import { removeTempPacks } from './crash-debris.js';
import { BundlemirrorError } from '../../errors.js';

export interface PartSpec {
  size: number;
  objects: number;
}

export interface PartIndexer {
  /** The pack's bytes, in order, from its first byte to the end of its trailer; rejects once a part has failed. */
  write(bytes: Buffer): Promise<void>;
  /** Every byte was written: waits for the last part and returns the packs made, in order. */
  end(): Promise<string[]>;
  /** Stops every index-pack and removes every pack made. */
  drop(): Promise<void>;
}

/** Removes one pack and what git keeps beside it. */
export async function dropPack(gitDir: string, hash: string): Promise<void> {
  const base = join(gitDir, 'objects', 'pack', `pack-${hash}`);
  await Promise.all(['.pack', '.idx', '.rev', '.keep', '.promisor'].map((ext) => rm(base + ext, { force: true })));
}

/** One index-pack: a part, or consecutive parts whose bytes were all on disk already (one pack then). */
interface Running {
  feed: PassThrough;
  sha1: Hash;
  left: number;
  made: Promise<IndexedPack>;
  /** Settles once the trailer was sent and git finished (rejects when it failed). */
  done: Promise<void>;
  /** The bytes are all in: send the trailer once the one before is done. */
  finish: () => void;
}

export function indexPackParts(
  gitDir: string,
  parts: readonly PartSpec[],
  repo: string,
  signal?: AbortSignal,
  /** Called as each pack is in the repository, with the parts it holds (0-based, inclusive). */
  onPack?: (first: number, last: number) => void,
  /**
   * Bytes of the pack already on disk. Parts whose bytes are all there
   * when their turn comes go to one index-pack together: when the link is
   * faster than indexing, one pack costs less than several.
   */
  onDisk?: () => number,
): PartIndexer {
  const abort = new AbortController();
  const stopSignal = signal ? AbortSignal.any([signal, abort.signal]) : abort.signal;
  const total = PACK_HEADER_SIZE + parts.reduce((n, p) => n + p.size, 0) + PACK_TRAILER_SIZE;
  const objects = parts.reduce((n, p) => n + p.objects, 0);
  let header = Buffer.alloc(0);
  let pos = 0;
  let current: Running | null = null;
  const started: Running[] = [];
  let nextPart = 0;
  let failure: unknown = null;
  const partEnd: number[] = [];
  parts.reduce((at, p) => (partEnd.push(at + p.size), at + p.size), PACK_HEADER_SIZE);

  const start = async (): Promise<Running> => {
    // at most two at once: a pack starts once the one two before is in
    if (started.length >= 2) await started[started.length - 2]!.done;
    const first = nextPart;
    let last = first;
    const available = onDisk?.() ?? 0;
    while (last + 1 < parts.length && partEnd[last + 1]! <= available) last += 1;
    nextPart = last + 1;
    const group = parts.slice(first, last + 1);
    const feed = new PassThrough({ highWaterMark: 1 << 20 });
    feed.on('error', () => {}); // git's end is observed through its exit
    const made = indexPack(gitDir, feed, repo, { signal: stopSignal, thin: false });
    made.catch(() => {});
    const sha1 = createHash('sha1');
    const head = packHeader(group.reduce((n, p) => n + p.objects, 0));
    sha1.update(head);
    await feedGit(feed, head, repo);
    const previous = started[started.length - 1]?.done ?? Promise.resolve();
    let finish!: () => void;
    const ready = new Promise<void>((res) => (finish = res));
    const done = (async () => {
      await ready;
      await previous; // its links may point into the part before: that pack must be in the repository first
      feed.end(sha1.digest());
      await made;
      onPack?.(first, last);
    })();
    done.catch((err: unknown) => (failure ??= err));
    const r: Running = { feed, sha1, left: group.reduce((n, p) => n + p.size, 0), made, done, finish };
    started.push(r);
    return r;
  };

  return {
    async write(bytes) {
      let at = 0;
      while (at < bytes.length) {
        if (failure) throw failure;
        if (header.length < PACK_HEADER_SIZE) {
          const n = Math.min(PACK_HEADER_SIZE - header.length, bytes.length - at);
          header = Buffer.concat([header, bytes.subarray(at, at + n)]);
          at += n;
          pos += n;
          if (header.length === PACK_HEADER_SIZE && packObjectCount(header) !== objects)
            throw (failure = new BundlemirrorError(
              'E_INDEX',
              `the pack holds ${packObjectCount(header)} objects, its parts ${objects}`,
              { repo },
            ));
          continue;
        }
        if (nextPart === parts.length && !current) {
          // the trailer: what it proves, the caller proves over the whole file
          const n = Math.min(total - pos, bytes.length - at);
          if (n <= 0) throw (failure = new BundlemirrorError('E_INDEX', 'more bytes than the pack holds', { repo }));
          at += n;
          pos += n;
          continue;
        }
        current ??= await start();
        const n = Math.min(current.left, bytes.length - at);
        const chunk = bytes.subarray(at, at + n);
        current.sha1.update(chunk);
        await feedGit(current.feed, chunk, repo);
        current.left -= n;
        at += n;
        pos += n;
        if (current.left === 0) {
          current.finish();
          current = null;
        }
      }
    },
    async end() {
      if (failure) throw failure;
      if (pos !== total || nextPart !== parts.length)
        throw new BundlemirrorError('E_INDEX', 'the pack ended before its last part', { repo });
      const made: string[] = [];
      for (const r of started) {
        await r.done;
        made.push((await r.made).packHash);
      }
      return made;
    },
    async drop() {
      abort.abort();
      for (const r of started) {
        r.feed.destroy();
        r.finish();
      }
      const results = await Promise.allSettled(started.map((r) => r.made));
      for (const res of results) if (res.status === 'fulfilled') await dropPack(gitDir, res.value.packHash);
      // a killed or failed index-pack leaves its temporary pack; none of ours runs any more
      await removeTempPacks(gitDir);
    },
  };
}

/**
 * Writes to index-pack's input, waiting while it is full; fails, naming
 * `repo`, once git has stopped reading (it exited: its own error, from
 * `indexPack`, says why). The callers catch this and index the verified
 * file as a whole instead, so it reaches a user only through a bug; it
 * still says for which repository and what to do.
 */
export async function feedGit(feed: PassThrough, bytes: Buffer, repo: string): Promise<void> {
  if (feed.destroyed)
    throw new BundlemirrorError('E_GIT', 'git index-pack stopped reading the pack before its end', {
      repo,
      hint: 'the bundle is indexed from the verified file instead; if that fails too, its error says why, and rerunning pull resumes',
    });
  if (feed.write(bytes)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      feed.off('drain', done);
      feed.off('close', done);
      resolve();
    };
    feed.on('drain', done);
    feed.on('close', done);
  });
}
