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
 * index-pack resolves and checks links, is sent only once the parts it
 * needs are in the repository: every part before it, or the first `after`
 * of them when index.json says so (the second half of a level of trees,
 * indexed beside the first); at most two index-packs run at once. Parts
 * whose bytes are all on disk when their turn comes (the link is faster
 * than indexing) go to one index-pack together: they are a valid pack as
 * one (never the two halves of a level).
 *
 * A half git refuses (a link to an object not in yet: a tree met at two
 * depths can point into the half beside it) is indexed again, alone, once
 * the half beside it is in, from its bytes read again (`reread`) and kept
 * only if they hash as the ones fed the first time; the parts after it go
 * on meanwhile and wait for it. Any other refusal, or a second one, stops
 * the parts after it: `end()` names every part in no pack, for the caller
 * to index together from the verified file. Nothing here decides what is trusted: the caller
 * keeps the packs only when the bytes fed are exactly the verified file
 * (stream-index.ts) and calls `drop()` otherwise. An inconsistency in the
 * bytes themselves (a header whose count is not the parts' sum, more bytes
 * than the parts hold) fails the indexer, never the sync.
 */
import { rm } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { PACK_HEADER_SIZE, PACK_TRAILER_SIZE, framedPack, packHeader, packObjectCount } from '../../git/pack.js';
import { indexPack, type IndexedPack } from '../../git/repo.js';
import { removeTempPacks } from './crash-debris.js';
import { BundlemirrorError } from '../../errors.js';

export interface PartSpec {
  size: number;
  objects: number;
  /** How many leading parts its links may point into (absent: all before it); fewer lets it run beside them. */
  after?: number | undefined;
}

export interface PartIndexerOptions {
  signal?: AbortSignal | undefined;
  /** Called as each pack is in the repository, with the parts it holds (0-based, inclusive); `again` for a half refused once. */
  onPack?: ((first: number, last: number, again: boolean) => void) | undefined;
  /** A half git refused: it is indexed again once the parts beside it are in. */
  onRefused?: ((part: number) => void) | undefined;
  /**
   * Bytes of the pack already on disk. Parts whose bytes are all there
   * when their turn comes go to one index-pack together: when the link is
   * faster than indexing, one pack costs less than several.
   */
  onDisk?: (() => number) | undefined;
  /** Part k's bytes once more, from the file; without it a refused half is not tried again. */
  reread?: ((part: number) => AsyncIterable<Buffer>) | undefined;
}

export interface PartIndexer {
  /** The pack's bytes, in order, from its first byte to the end of its trailer; rejects once the pack cannot be what the parts say. */
  write(bytes: Buffer): Promise<void>;
  /**
   * Every byte was written: waits for the last part (and for every git started to end) and returns the packs
   * made, in order, and the parts (0-based) that are in none of them:
   * after a part git refused, the parts not yet proved are left for the
   * caller to index together from the verified file.
   */
  end(): Promise<{ packs: string[]; missing: number[] }>;
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
  /** The parts it holds. */
  first: number;
  last: number;
  feed: PassThrough;
  sha1: Hash;
  /** Of the part's bytes, for a half that may have to be read again. */
  sha256: Hash | null;
  left: number;
  /** Each index-pack run for these parts: the first, and the second try of a refused half. */
  attempts: Promise<IndexedPack>[];
  /** Settles once the first index-pack ended: true when its pack is in the repository. */
  firstTry: Promise<boolean>;
  /** Settles once git finished, at the second try for a refused half: the pack in the repository, or null. */
  done: Promise<IndexedPack | null>;
  /** The bytes are all in: send the trailer once the one before is done. */
  finish: () => void;
}

export function indexPackParts(
  gitDir: string,
  parts: readonly PartSpec[],
  repo: string,
  opts: PartIndexerOptions = {},
): PartIndexer {
  const abort = new AbortController();
  const stopSignal = opts.signal ? AbortSignal.any([opts.signal, abort.signal]) : abort.signal;
  const total = PACK_HEADER_SIZE + parts.reduce((n, p) => n + p.size, 0) + PACK_TRAILER_SIZE;
  const objects = parts.reduce((n, p) => n + p.objects, 0);
  let header = Buffer.alloc(0);
  let pos = 0;
  let current: Running | null = null;
  const started: Running[] = [];
  let nextPart = 0;
  let failure: unknown = null;
  /** A part was refused for good (its links were not all in, or its bytes are not what index.json says): no more are started. */
  let refused = false;
  const partEnd: number[] = [];
  const beside = (k: number) => (parts[k]!.after ?? k) < k;
  /** Whether part k+1 runs beside part k (it does not wait for it). */
  const besideNext = (k: number) => k + 1 < parts.length && beside(k + 1) && parts[k + 1]!.after! <= k;
  /** A part indexed side by side with another: one that needs fewer than the parts before it, or the one it runs beside. */
  const paired = (k: number) => beside(k) || besideNext(k);
  parts.reduce((at, p) => (partEnd.push(at + p.size), at + p.size), PACK_HEADER_SIZE);

  // the run that holds each part, once started (null: never, the part was skipped or the indexer dropped)
  const runs = new Map<number, Promise<Running | null>>();
  const settleRun = new Map<number, (r: Running | null) => void>();
  const runFor = (k: number): Promise<Running | null> => {
    let run = runs.get(k);
    if (!run) {
      run = new Promise((resolve) => settleRun.set(k, resolve));
      runs.set(k, run);
    }
    return run;
  };
  const settle = (k: number, r: Running | null) => {
    void runFor(k);
    settleRun.get(k)?.(r);
    settleRun.delete(k);
  };

  /** Part k's bytes read again (a half refused once); they must be the bytes fed the first time. */
  async function* partAgain(k: number, fed: Buffer): AsyncGenerator<Buffer> {
    const sha256 = createHash('sha256');
    let size = 0;
    for await (const bytes of opts.reread!(k)) {
      size += bytes.length;
      sha256.update(bytes);
      yield bytes;
    }
    // thrown before the pack's trailer: git then fails the pack
    if (size !== parts[k]!.size || !sha256.digest().equals(fed))
      throw new BundlemirrorError('E_INDEX', `part ${k + 1} read again is not the part fed before`, { repo });
  }

  /**
   * Part k, a half refused once (its links point into the half beside it),
   * indexed again once the parts beside it are in: the ones before it that
   * it did not wait for (from `need`), and the one after it that does not
   * wait for it. Null when one of those was refused too.
   */
  const secondTry = async (
    k: number,
    need: number,
    fed: Buffer,
    attempts: Promise<IndexedPack>[],
  ): Promise<IndexedPack | null> => {
    const besideIt = Array.from({ length: k - need }, (_, j) => need + j);
    if (besideNext(k)) besideIt.push(k + 1);
    const runs = await Promise.all(besideIt.map(runFor));
    const inNow = await Promise.all(runs.map((r) => r?.firstTry ?? false));
    if (!inNow.every(Boolean) || stopSignal.aborted) return null;
    const again = indexPack(gitDir, Readable.from(framedPack(parts[k]!.objects, partAgain(k, fed))), repo, {
      signal: stopSignal,
      thin: false,
    });
    attempts.push(again);
    return again.catch(() => null);
  };

  const start = async (): Promise<Running> => {
    // at most two at once: a pack starts once the one two before is in
    if (started.length >= 2) await started[started.length - 2]!.done;
    const first = nextPart;
    let last = first;
    const available = opts.onDisk?.() ?? 0;
    // parts on disk go together, but never two that may be indexed side by side
    if (!paired(first))
      while (last + 1 < parts.length && !paired(last + 1) && partEnd[last + 1]! <= available) last += 1;
    nextPart = last + 1;
    const need = beside(first) ? parts[first]!.after! : first;
    const group = parts.slice(first, last + 1);
    const feed = new PassThrough({ highWaterMark: 1 << 20 });
    feed.on('error', () => {}); // git's end is observed through its exit
    const made = indexPack(gitDir, feed, repo, { signal: stopSignal, thin: false });
    made.catch(() => {});
    const sha1 = createHash('sha1');
    const head = packHeader(group.reduce((n, p) => n + p.objects, 0));
    sha1.update(head);
    await feedGit(feed, head, repo);
    // its links may point into the parts before it (those it needs): their packs must be in the repository first
    const previous = Promise.all(started.filter((r) => r.first < need).map((r) => r.done));
    previous.catch(() => {}); // awaited once the bytes are in; a failure there is the indexer's already
    let finish!: () => void;
    const ready = new Promise<void>((res) => (finish = res));
    let tried!: (ok: boolean) => void;
    const firstTry = new Promise<boolean>((res) => (tried = res));
    const sha256 = paired(first) && opts.reread ? createHash('sha256') : null;
    const attempts = [made];
    const done = (async (): Promise<IndexedPack | null> => {
      await ready;
      if (!(await previous).every(Boolean)) {
        // a part it needs was refused: its links cannot all be in
        feed.destroy();
        return (tried(false), null);
      }
      const fed = sha256?.digest();
      feed.end(sha1.digest());
      const pack = await made.catch(() => null);
      tried(pack !== null);
      if (pack) {
        opts.onPack?.(first, last, false);
        return pack;
      }
      if (fed) {
        opts.onRefused?.(first);
        const second = await secondTry(first, need, fed, attempts);
        if (second) {
          opts.onPack?.(first, last, true);
          return second;
        }
      }
      refused = true;
      return null;
    })();
    done.catch((err: unknown) => {
      tried(false);
      failure ??= err;
    });
    const r: Running = {
      first,
      last,
      feed,
      sha1,
      sha256,
      left: group.reduce((n, p) => n + p.size, 0),
      attempts,
      firstTry,
      done,
      finish,
    };
    started.push(r);
    for (let k = first; k <= last; k++) settle(k, r);
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
        if (refused && !current) {
          // the rest goes to the caller's one pack: skip to the next part's end
          const n = Math.min(partEnd[nextPart]! - pos, bytes.length - at);
          at += n;
          pos += n;
          if (pos === partEnd[nextPart]) settle(nextPart++, null);
          continue;
        }
        current ??= await start();
        const n = Math.min(current.left, bytes.length - at);
        const chunk = bytes.subarray(at, at + n);
        current.sha1.update(chunk);
        current.sha256?.update(chunk);
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
      const packs: string[] = [];
      const proved = new Set<number>();
      for (const r of started) {
        const pack = await r.done;
        if (!pack) continue;
        packs.push(pack.packHash);
        for (let k = r.first; k <= r.last; k++) proved.add(k);
      }
      // every git ended, also those stopped before their trailer: what they leave is there now, for the caller
      await Promise.allSettled(started.flatMap((r) => r.attempts));
      if (failure) throw failure;
      return { packs, missing: parts.map((_, k) => k).filter((k) => !proved.has(k)) };
    },
    async drop() {
      abort.abort();
      for (const k of [...settleRun.keys()]) settle(k, null);
      for (const r of started) {
        r.feed.destroy();
        r.finish();
      }
      const results = await Promise.allSettled(started.flatMap((r) => r.attempts));
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
