/**
 * A new repository (no shared store) built from a base and the bundles
 * after it: each bundle is indexed while the next downloads, instead of
 * downloading the whole chain and then unbundling it piece by piece. When
 * the origin publishes a large base as a chain of history slices, this is
 * what lets slice k's deltas resolve while slice k+1 is on the wire.
 *
 * Two lanes: downloads run one after another without waiting for git; the
 * indexer takes bundle k once bundle k-1 is indexed (its prerequisites, and
 * the delta bases of a thin pack, must be in the repository first) and
 * follows its partial file as it grows (stream-index.ts), or reads the
 * verified file when the download was faster. Nothing is trusted early:
 * every file is verified (size, sha256) by its download, a streamed pack is
 * kept only when it is exactly the verified file's pack, and refs move only
 * in the caller, after everything here succeeded.
 *
 * Connectivity is proved one bundle at a time, as `git clone` does for the
 * one pack it receives: the base by index-pack itself when it is
 * self-contained and connected, each later bundle by a walk of its own
 * objects only (`rev-list --objects <its tips> --not <tips proved so far>`),
 * which overlaps the next download; the refs are then checked with a walk
 * stopped at the proved tips.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { BundlemirrorError } from '../../errors.js';
import { readBundleHeader } from '../../git/bundle.js';
import { connectedAbove } from '../../git/history.js';
import { existingObjects, indexPack } from '../../git/repo.js';
import type { BundleRef } from '../../manifest/repo-index.js';
import type { DownloadResult } from '../../transfer/download-options.js';
import { partialPathFor } from '../../transfer/partial-file.js';
import { streamIndex, type StreamedPacks, type StreamingIndex } from './stream-index.js';

export interface FreshChainInput {
  work: string;
  path: string;
  /** The planner's chain: a base, then bundles each applicable once those before it are. */
  bundles: readonly BundleRef[];
  partialDir: string;
  /** Where a verified bundle lands: `<dir>/<sha256>.bundle`. */
  cacheDir: string;
  /** Downloads and verifies one bundle into the cache; `onProgress` is called as bytes arrive. */
  download: (b: BundleRef, onProgress: () => void, signal: AbortSignal) => Promise<DownloadResult>;
  signal?: AbortSignal | undefined;
  log: { debug(msg: string): void };
}

export interface FreshChainResult {
  downloads: DownloadResult[];
  /** How many packs were indexed while their bundle downloaded (the rest: from the verified file). */
  streamed: number;
  /**
   * Commits whose whole history is proved present, for `connectedAbove`;
   * null when some bundle could not be proved (the caller walks everything).
   */
  provedTips: string[] | null;
}

export async function indexFreshChain(input: FreshChainInput): Promise<FreshChainResult> {
  const { work, path, bundles, signal } = input;
  const dest = (b: BundleRef) => join(input.cacheDir, `${b.sha256}.bundle`);
  const streams: (StreamingIndex | null)[] = bundles.map(() => null);
  const downloads: DownloadResult[] = [];
  // indexing failed: the download under way stops too (the partial stays for the next run)
  const stop = new AbortController();
  const downloadSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;

  // lane 1: the downloads, back to back
  const done = bundles.map(() => {
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const p = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    p.catch(() => {}); // observed by the indexing lane or below
    return { p, resolve, reject };
  });
  const downloading = (async () => {
    for (const [k, b] of bundles.entries()) {
      try {
        downloads.push(await input.download(b, () => streams[k]?.poke(), downloadSignal));
        input.log.debug(`${path}: ${b.uri}: downloaded and verified`);
        done[k]!.resolve();
      } catch (err) {
        for (const d of done.slice(k)) d.reject(err);
        throw err;
      }
    }
  })();

  // lane 2: index one bundle after another, each as soon as the one before is in
  let streamed = 0;
  let proved: string[] | null = [];
  const indexing = (async () => {
    for (const [k, b] of bundles.entries()) {
      const stream = streamIndex(partialPathFor(input.partialDir, b.sha256), b.size, work, path, {
        signal,
        acceptHeader: async (h) => (await existingObjects(work, h.prerequisites, path)).size === h.prerequisites.length,
        parts: b.parts ? { parts: b.parts, sha256: b.sha256 } : undefined,
        log: (msg) => input.log.debug(msg),
      });
      streams[k] = stream;
      try {
        await done[k]!.p;
      } catch (err) {
        await stream.abandon();
        throw err;
      }
      let pack: StreamedPacks | null = await stream.finish(dest(b));
      const viaStream = pack !== null;
      if (viaStream) streamed += 1;
      const header = await readBundleHeader(dest(b));
      if (!pack) {
        await requirePrerequisites(work, b, header.prerequisites, path);
        const one = await indexPack(work, createReadStream(dest(b), { start: header.packOffset }), path, { signal });
        pack = { packHashes: [one.packHash], connected: one.selfContainedAndConnected };
      }
      if (b.parts && !viaStream)
        input.log.debug(`${path}: ${b.uri}: its ${b.parts.length} parts could not be indexed one by one`);
      input.log.debug(`${path}: ${b.uri}: indexed ${viaStream ? 'while it downloaded' : 'from the verified file'}`);
      const tips = header.tips.map((t) => t.oid);
      if (proved !== null) {
        const ok: boolean =
          (k === 0 && pack.connected) ||
          (header.prerequisites.every((p) => proved!.includes(p)) && (await connectedAbove(work, tips, proved, path)));
        proved = ok ? [...new Set([...proved, ...tips])] : null;
      }
    }
  })();

  try {
    await Promise.all([downloading, indexing]);
  } catch (err) {
    stop.abort();
    await Promise.allSettled([downloading, indexing]);
    await Promise.all(streams.map((s) => s?.abandon()));
    throw err;
  }
  input.log.debug(`${path}: ${streamed} of ${bundles.length} bundle(s) indexed while they downloaded`);
  return { downloads, streamed, provedTips: proved };
}

/** Fails, naming the first missing commit, unless every prerequisite of bundle `b` is in `work`. */
export async function requirePrerequisites(
  work: string,
  b: BundleRef,
  prerequisites: string[],
  path: string,
): Promise<void> {
  const have = await existingObjects(work, prerequisites, path);
  const missing = prerequisites.filter((p) => !have.has(p));
  if (missing.length)
    throw new BundlemirrorError(
      'E_PREREQUISITES',
      `bundle ${b.uri} needs ${missing.length} commit(s) this replica lacks (${missing[0]})`,
      { repo: path, hint: 'rerun pull; if it persists, the origin index is inconsistent' },
    );
}
