/**
 * Indexes a base bundle's pack while the bundle downloads, without giving
 * up "verify first".
 *
 * The downloader writes the partial file as bytes arrive (resuming, and
 * starting over when a server misbehaves); this reader follows that file
 * from its first byte, skips the bundle header, and feeds the pack to `git
 * index-pack --stdin` in the new repository's staging directory, so git's
 * receive phase (inflating and hashing every object) overlaps the download
 * instead of following it. Nothing it writes is trusted by itself:
 *
 * - refs move only after the downloader has verified the whole file
 *   (size and sha256 from index.json), as for every other bundle;
 * - the pack index-pack built is kept only if the last 20 bytes it was fed
 *   (the pack's SHA-1 trailer, which index-pack checks against every byte
 *   before it) equal the last 20 bytes of the verified file: bytes fed from
 *   a prefix the downloader later threw away, or from another version of
 *   the file, cannot survive that check. (Not the pack's name: for a thin
 *   pack `--fix-thin` appends the bases it borrowed, which renames it.)
 * - anything that goes wrong (the partial shrank, git failed, the link
 *   died) drops what index-pack wrote; the caller then indexes the verified
 *   file as usual. A killed run leaves only the staging directory, which
 *   the next run removes before it starts.
 *
 * Used for the bundles of a new repository without a shared store: its
 * base, and each bundle after it once the one before is indexed (its
 * prerequisites are then here; `acceptHeader` checks), see fresh-chain.ts.
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import { parseBundleHeader, type BundleHeader } from '../../git/bundle.js';
import { PACK_HEADER_SIZE, framedPack } from '../../git/pack.js';
import { indexPack, type IndexedPack } from '../../git/repo.js';
import type { PackPart } from '../../manifest/repo-index.js';
import { removeTempPacks } from './crash-debris.js';
import { dropPack, feedGit, indexPackParts, type PartIndexer } from './part-indexer.js';

const CHUNK = 1 << 20;
const MAX_HEADER = 64 << 20;
/** How often the reader looks at the partial when the downloader has not said it wrote more. */
const POLL_MS = 50;

/** What a streamed bundle left in the repository: one pack, or one per part. */
export interface StreamedPacks {
  packHashes: string[];
  /** git proved every object these packs link to present (`git clone` skips its connectivity walk then). */
  connected: boolean;
}

export interface StreamingIndex {
  /** The download made progress: look at the partial now. */
  poke(): void;
  /**
   * The download verified `file` (the partial, renamed): finish feeding
   * index-pack from it and return the pack when it is exactly that file's
   * pack, else null with nothing left behind.
   */
  finish(file: string): Promise<StreamedPacks | null>;
  /** The download failed: stop index-pack and remove what it wrote. */
  abandon(): Promise<void>;
}

export interface StreamIndexOptions {
  signal?: AbortSignal | undefined;
  /**
   * Whether a bundle with this header may be indexed here; the default
   * takes only a bundle without prerequisites. A bundle on top of others
   * is indexed only when its prerequisites are present (index-pack
   * `--fix-thin` reads its delta bases from the repository).
   */
  acceptHeader?: ((header: BundleHeader) => Promise<boolean>) | undefined;
  /**
   * A base published in parts (index.json): each part is indexed on its
   * own as soon as its bytes are in (part-indexer.ts). The packs are kept
   * only when the sha256 of every byte read, header included, is `sha256`:
   * the bytes fed are then exactly the verified file. A half of a level
   * git refused is read again from the file and indexed once the half
   * beside it is in; parts git refused for good are read again from the
   * verified file and indexed as one pack.
   */
  parts?: { parts: readonly PackPart[]; sha256: string } | undefined;
  /** Debug log: each part as it is indexed. */
  log?: ((msg: string) => void) | undefined;
}

export function streamIndex(
  partial: string,
  expectedSize: number,
  gitDir: string,
  repo: string,
  opts: StreamIndexOptions = {},
): StreamingIndex {
  const signal = opts.signal;
  const accept = opts.acceptHeader ?? ((h: BundleHeader) => Promise.resolve(h.prerequisites.length === 0));
  const abort = new AbortController();
  const onAbort = () => abort.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const feed = new PassThrough({ highWaterMark: CHUNK });
  feed.on('error', () => {}); // index-pack's end (the pipe breaking) is observed through its exit
  let indexing: Promise<IndexedPack> | null = null;
  let parted: PartIndexer | null = null;
  const readHash = opts.parts ? createHash('sha256') : null;
  let fh: FileHandle | null = null;
  let pos = 0;
  let header: Buffer | null = Buffer.alloc(0);
  /** The last 20 bytes fed to index-pack: the pack trailer it checked. */
  let fedTail: Buffer = Buffer.alloc(0);
  let failed = false;
  let stopped = false;
  /** Bytes of the file on disk when last looked at. */
  let onDisk = 0;
  let verifiedFile: string | null = null;
  let wake: (() => void) | null = null;

  const pause = () =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, POLL_MS);
      function done() {
        clearTimeout(t);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const feedPack = async (bytes: Buffer): Promise<void> => {
    fedTail = bytes.length >= 20 ? bytes.subarray(bytes.length - 20) : Buffer.concat([fedTail, bytes]).subarray(-20);
    await feedGit(feed, bytes, repo);
  };

  /** Hands over bytes read from the file at `pos`; false when this is not a stream worth indexing. */
  const take = async (bytes: Buffer): Promise<boolean> => {
    pos += bytes.length;
    readHash?.update(bytes);
    if (header === null) {
      if (parted) await parted.write(bytes);
      else await feedPack(bytes);
      return true;
    }
    header = Buffer.concat([header, bytes]);
    const end = header.indexOf('\n\n');
    if (end < 0) return header.length <= MAX_HEADER;
    const parsed = parseBundleHeader(header.subarray(0, end + 2));
    if (!(await accept(parsed))) return false;
    const rest = header.subarray(end + 2);
    header = null;
    const parts = opts.parts?.parts;
    // the parts must start right after the pack header, and only a base's parts stand alone
    if (parts && parsed.prerequisites.length === 0 && parts[0]?.offset === parsed.packOffset + PACK_HEADER_SIZE) {
      const packOffset = parsed.packOffset;
      const name = (first: number, last: number) =>
        `${first === last ? `part ${last + 1}` : `parts ${first + 1}-${last + 1}`} of ${parts.length}`;
      parted = indexPackParts(gitDir, parts, repo, {
        signal: abort.signal,
        onPack: (first, last, again) =>
          opts.log?.(`${repo}: ${name(first, last)} indexed${again ? ' at its second try' : ''}`),
        onRefused: (k) => opts.log?.(`${repo}: ${name(k, k)} refused; again once the part beside it is in`),
        onDisk: () => onDisk - packOffset,
        // from the file being downloaded (the bytes are already there), or the verified one it was renamed to
        reread: (k) =>
          fileRange(
            () => verifiedFile ?? partial,
            parts[k]!.offset,
            parts[k]!.size,
            () => verifiedFile,
          ),
      });
      await parted.write(rest);
      return true;
    }
    indexing = indexPack(gitDir, feed, repo, { signal: abort.signal });
    indexing.catch(() => {}); // observed in finish() or abandon()
    await feedPack(rest);
    return true;
  };

  const reading = (async () => {
    const buf = Buffer.alloc(CHUNK);
    while (!stopped && !failed && pos < expectedSize) {
      if (!fh) {
        // once verified, the partial has been renamed; the same bytes are in the verified file
        const file: string = verifiedFile ?? partial;
        try {
          fh = await open(file, 'r');
        } catch {
          // (the file verified while the partial was being opened: look again, at the verified file)
          if (file === verifiedFile) failed = true;
          else await pause();
          continue;
        }
      }
      const size = (await fh.stat()).size;
      onDisk = size;
      if (size < pos) {
        failed = true; // the downloader started over: what was fed is not what will be verified
        break;
      }
      if (size === pos) {
        // the download is over and this file will not grow: it is not the one that was verified
        if (verifiedFile) failed = true;
        else await pause();
        continue;
      }
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, size - pos), pos);
      if (bytesRead === 0) continue;
      if (!(await take(Buffer.from(buf.subarray(0, bytesRead))))) failed = true;
    }
  })().catch(() => {
    failed = true;
  });

  const stop = async (): Promise<null> => {
    stopped = true;
    wake?.();
    await reading;
    abort.abort();
    feed.destroy();
    const made = await indexing?.catch(() => null);
    if (made) await dropPack(gitDir, made.packHash);
    // an index-pack that failed or was stopped leaves its temporary pack, and it was the only one running here
    else if (indexing) await removeTempPacks(gitDir);
    await parted?.drop();
    return null;
  };

  const cleanup = async () => {
    signal?.removeEventListener('abort', onAbort);
    await fh?.close().catch(() => {});
  };

  return {
    poke: () => wake?.(),
    async finish(file) {
      verifiedFile = file;
      try {
        wake?.();
        await reading;
        if (failed || pos !== expectedSize) return await stop();
        if (parted) {
          const made = await parted.end().catch(() => null);
          if (!made || readHash!.digest('hex') !== opts.parts!.sha256) return await stop();
          await removeTempPacks(gitDir); // what refused index-packs left; none of ours runs now
          if (made.missing.length > 0) {
            // a part git refused for good (its links pointed into a part after it): the parts not yet in go to
            // one pack, read again from the file just verified
            const parts = opts.parts!.parts;
            const rest = await indexPack(
              gitDir,
              Readable.from(
                framedPack(
                  made.missing.reduce((n, k) => n + parts[k]!.objects, 0),
                  partsOf(file, parts, made.missing),
                ),
              ),
              repo,
              {
                signal: abort.signal,
                thin: false,
              },
            ).catch(() => null);
            if (!rest) return await stop();
            opts.log?.(
              `${repo}: parts ${made.missing.map((k) => k + 1).join(', ')} of ${parts.length} indexed again as one pack`,
            );
            made.packs.push(rest.packHash);
          }
          return { packHashes: made.packs, connected: true };
        }
        if (!indexing) return await stop();
        feed.end();
        const made = await indexing.catch(() => null);
        if (!made) return await stop();
        const tail = Buffer.alloc(20);
        const check = await open(file, 'r');
        try {
          await check.read(tail, 0, 20, expectedSize - 20);
        } finally {
          await check.close();
        }
        if (!tail.equals(fedTail)) {
          await dropPack(gitDir, made.packHash);
          return null;
        }
        return { packHashes: [made.packHash], connected: made.selfContainedAndConnected };
      } finally {
        await cleanup();
      }
    },
    async abandon() {
      try {
        await stop();
      } finally {
        await cleanup();
      }
    },
  };
}

/** The bytes of the parts `which` of a verified bundle `file`, one after another. */
async function* partsOf(file: string, parts: readonly PackPart[], which: readonly number[]): AsyncGenerator<Buffer> {
  for (const k of which) yield* fileRange(() => file, parts[k]!.offset, parts[k]!.size);
}

/**
 * `size` bytes at `offset` of the file `path()` names; when it is gone
 * (the partial was renamed once verified), of the file `renamed()` names.
 */
async function* fileRange(
  path: () => string,
  offset: number,
  size: number,
  renamed?: () => string | null,
): AsyncGenerator<Buffer> {
  const fh = await open(path(), 'r').catch((err: unknown) => {
    const then = renamed?.();
    if (!then) throw err;
    return open(then, 'r');
  });
  try {
    const buf = Buffer.alloc(CHUNK);
    for (let at = offset; at < offset + size;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, offset + size - at), at);
      if (bytesRead === 0) throw new Error('the file ends before the part does');
      yield Buffer.from(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await fh.close();
  }
}
