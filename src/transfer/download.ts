/**
 * Resumable, verified download of one content-addressed file (a bundle).
 *
 * The bytes go to `<partialDir>/<sha256>.part`, which survives a killed
 * process; every attempt, in this run or a later one, continues from the
 * bytes on disk. The retry loop is ours (got's would replay the first
 * Range): it backs off with jitter, honours Retry-After, and is
 * progress-aware: a link that drops every few megabytes still finishes,
 * and an origin that makes no progress is waited for (an outage, a restart)
 * for `retryForMs` since the last byte arrived before it is given up on;
 * every wait is announced through `onWait`. The destination is written only by renaming a
 * partial whose size and sha256 match the index.
 */
import { BundlemirrorError } from '../errors.js';
import { resolveBackoff, retryDelay, sleep } from './backoff.js';
import { runAttempt, type AttemptContext } from './download-attempt.js';
import { resolveTimeouts } from './http.js';
import type { Failure } from './failure.js';
import { giveUp } from './download-give-up.js';
import { stats } from './download-stats.js';
import { PartialFile, holdsContent, partialPathFor } from './partial-file.js';
import { RateMeter } from './progress.js';
import { bundleEtag } from '../manifest/tree.js';
import { DEFAULT_RETRY_FOR_MS } from './retry-policy.js';
import type { DownloadFileOptions, DownloadResult } from './download-options.js';

export type { DownloadProgress } from './progress.js';
export type { DownloadFileOptions } from './download-options.js';

/** A download whose content fails its hash is retried once from scratch, then reported. */
const MAX_VERIFY_FAILURES = 2;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Downloads running in this process, by partial path: two calls for one sha256 take turns. */
const running = new Map<string, Promise<unknown>>();

export async function downloadFile(opts: DownloadFileOptions): Promise<DownloadResult> {
  if (!SHA256_HEX.test(opts.sha256))
    throw new TypeError(`downloadFile: sha256 must be 64 lowercase hex digits, got ${JSON.stringify(opts.sha256)}`);
  if (!Number.isSafeInteger(opts.expectedSize) || opts.expectedSize < 0)
    throw new TypeError(`downloadFile: bad expectedSize ${opts.expectedSize}`);
  const key = partialPathFor(opts.partialDir, opts.sha256);
  const before = running.get(key) ?? Promise.resolve();
  const mine = before.catch(() => {}).then(() => download(opts));
  const tail = mine.catch(() => {});
  running.set(key, tail);
  try {
    return await mine;
  } finally {
    if (running.get(key) === tail) running.delete(key);
  }
}

async function download(opts: DownloadFileOptions): Promise<DownloadResult> {
  const { url, expectedSize, sha256, signal } = opts;
  signal?.throwIfAborted();
  const timeouts = resolveTimeouts(opts.timeouts);
  const backoff = resolveBackoff(opts.backoff);
  const retries = opts.retries ?? Infinity;
  const maxAttempts = opts.maxAttempts ?? Infinity;
  const retryForMs = opts.retryForMs ?? DEFAULT_RETRY_FOR_MS;
  let lastByteAt = Date.now();
  const progressEvery = opts.progressIntervalMs ?? 250;

  // A destination an earlier call verified and committed, whose user died before reading it
  // (a pull killed mid-unbundle), is as good as a complete partial: verify it again, request nothing.
  if (await holdsContent(opts.dest, expectedSize, sha256)) {
    stats.downloads += 1;
    stats.bytesResumed += expectedSize;
    opts.onProgress?.({ received: expectedSize, total: expectedSize, resumedFrom: expectedSize, rate: 0 });
    return {
      path: opts.dest,
      bytesDownloaded: 0,
      bytesResumed: expectedSize,
      attempts: 0,
      restarts: 0,
      bytesHashedFromDisk: expectedSize,
    };
  }

  const part = await PartialFile.open(opts.partialDir, sha256, expectedSize);
  const resumedFrom = part.size;
  let keptPrefix = true;
  const result: DownloadResult = {
    path: opts.dest,
    bytesDownloaded: 0,
    bytesResumed: 0,
    attempts: 0,
    restarts: 0,
    bytesHashedFromDisk: 0,
  };
  stats.downloads += 1;

  const meter = new RateMeter();
  let lastProgressAt = 0;
  const report = (force: boolean): void => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!force && now - lastProgressAt < progressEvery) return;
    lastProgressAt = now;
    opts.onProgress({
      received: part.size,
      total: expectedSize,
      resumedFrom: keptPrefix ? resumedFrom : 0,
      rate: meter.current(),
    });
  };

  const ctx: AttemptContext = {
    url,
    redirects: opts.redirects,
    part,
    sha256,
    expectedSize,
    timeouts,
    signal,
    validator: (await part.readValidator()) ?? bundleEtag(sha256),
    onWire: (n) => {
      result.bytesDownloaded += n;
      stats.bytesDownloaded += n;
      meter.add(n);
    },
    onWritten: () => report(false),
    onDiscard: () => {
      sources.clear();
      keptPrefix = false;
      result.restarts += 1;
      stats.restarts += 1;
    },
  };

  const mirrors = opts.mirrors;
  /** The host the current attempt goes to (null without mirrors). */
  let hostRoot: string | null = null;
  /** Hosts whose bytes are in the partial now: a wrong hash is one host's fault only when there is one. */
  const sources = new Set<string>();
  // bytes kept from an earlier run came from a host nobody recorded
  if (part.size > 0) sources.add('(an earlier run)');
  let lastWrong: BundlemirrorError | undefined;

  /** The most bytes the partial has held: an attempt "made progress" only if it got further. */
  let highWater = part.size;
  let consecutiveFailures = 0;
  let failuresWithoutProgress = 0;
  let verifyFailures = 0;
  let lastFailure: Failure | undefined;

  const contentIsWrong = async (error: BundlemirrorError): Promise<void> => {
    verifyFailures += 1;
    stats.verifyFailures += 1;
    if (verifyFailures >= MAX_VERIFY_FAILURES) {
      await part.remove();
      throw error;
    }
    if (part.size > 0) {
      await part.discard();
      ctx.onDiscard('content failed verification');
    } else {
      await part.writeValidator(undefined);
    }
    ctx.validator = bundleEtag(sha256);
    highWater = 0;
  };

  try {
    for (;;) {
      signal?.throwIfAborted();
      if (part.size === expectedSize) {
        const digest = await part.digest();
        if (digest === sha256) {
          report(true);
          result.bytesHashedFromDisk = part.bytesReadBack;
          await part.commitTo(opts.dest);
          if (mirrors && hostRoot) mirrors.fileDone(hostRoot, opts.repo);
          result.bytesResumed = keptPrefix ? resumedFrom : 0;
          stats.bytesResumed += result.bytesResumed;
          return result;
        }
        if (mirrors && mirrors.size > 1 && sources.size === 1) {
          // one host sent every byte: it is that host's fault; the others may have it right
          const [bad] = [...sources];
          lastWrong = new BundlemirrorError(
            'E_BUNDLE_VERIFY',
            `${bad}: served ${expectedSize} bytes for ${url.slice(mirrors.primary.length)} whose sha256 is ${digest}, not ${sha256}`,
            {
              hint: 'that host serves other bytes than the index promises (stale or forged); it is skipped for this file',
            },
          );
          mirrors.servedWrong(url, bad!, lastWrong.message);
          opts.onWrongHost?.(bad!, lastWrong);
          await part.discard();
          ctx.onDiscard('content failed verification');
          sources.clear();
          highWater = 0;
          continue;
        }
        await contentIsWrong(
          new BundlemirrorError(
            'E_BUNDLE_VERIFY',
            `${url}: downloaded ${expectedSize} bytes whose sha256 is ${digest}, not ${sha256} as the index says`,
            {
              hint: 'the origin serves other bytes than its index promises (it may be republishing); pull again later, and tell the origin if it persists',
            },
          ),
        );
        continue;
      }

      const host = mirrors ? mirrors.choose(url) : null;
      if (mirrors && !host)
        throw lastWrong ?? new BundlemirrorError('E_BUNDLE_VERIFY', `${url}: every host served it wrong`);
      if (host && host.root !== hostRoot) {
        // another host of the same content-addressed file: resume against the file's own name, not the last host's ETag
        if (hostRoot !== null) ctx.validator = bundleEtag(sha256);
        hostRoot = host.root;
        ctx.url = host.url;
        ctx.redirects = host.root === mirrors!.primary ? opts.redirects : { roots: [host.root], repo: opts.repo };
      }
      if (hostRoot !== null) sources.add(hostRoot);
      result.attempts += 1;
      stats.attempts += 1;
      const attemptStart = Date.now();
      const before = result.bytesDownloaded;
      const outcome = await runAttempt(ctx);
      report(false);
      if (mirrors && hostRoot) mirrors.delivered(hostRoot, result.bytesDownloaded - before, Date.now() - attemptStart);

      if (outcome.kind === 'size-mismatch' && mirrors && hostRoot && mirrors.size > 1) {
        lastWrong = new BundlemirrorError(
          'E_BUNDLE_VERIFY',
          `${ctx.url} is ${outcome.serverSize} bytes on ${hostRoot}, the index says ${expectedSize}`,
          {
            hint: 'that host serves another file under this name (stale or forged); it is skipped for this file',
          },
        );
        mirrors.servedWrong(url, hostRoot, lastWrong.message);
        opts.onWrongHost?.(hostRoot, lastWrong);
        continue;
      }
      if (outcome.kind === 'size-mismatch') {
        await contentIsWrong(
          new BundlemirrorError(
            'E_BUNDLE_VERIFY',
            `${url} is ${outcome.serverSize} bytes on the server, the index says ${expectedSize}`,
            {
              hint: 'the origin replaced the file or its index is stale; pull again later, and tell the origin if it persists',
            },
          ),
        );
        continue;
      }
      if (outcome.kind === 'complete') continue;

      const failure = outcome.kind === 'failed' || outcome.kind === 'received' ? outcome.failure : undefined;
      if (failure && mirrors && hostRoot && mirrors.size > 1 && failure.error.code !== 'E_DISK') {
        // a host that fails (down, stalled, 404 because it is behind) rests; the next attempt goes elsewhere at once
        if (failure.retryable) mirrors.failed(hostRoot, failure.error.message);
        else mirrors.servedWrong(url, hostRoot, failure.error.message);
        lastFailure = failure;
        if (!failure.retryable) lastWrong = failure.error;
        if (part.size === expectedSize) continue;
        if (part.size > highWater) {
          highWater = part.size;
          consecutiveFailures = 0;
          lastByteAt = Date.now();
        }
        const rest = mirrors.waitFor(url);
        if (rest === 0) continue;
      } else if (failure && !failure.retryable) throw failure.error;
      if (failure) lastFailure = failure;
      if (part.size === expectedSize) continue;

      const progressed = part.size > highWater;
      if (progressed) {
        highWater = part.size;
        consecutiveFailures = 0;
        lastByteAt = Date.now();
      } else {
        consecutiveFailures += 1;
        failuresWithoutProgress += 1;
        const giveUpAt = lastByteAt + retryForMs;
        if (consecutiveFailures > retries || failuresWithoutProgress >= maxAttempts || Date.now() >= giveUpAt) {
          throw giveUp(
            opts,
            part,
            result.attempts,
            consecutiveFailures,
            lastByteAt,
            lastFailure,
            outcome.kind === 'restarted' ? outcome.reason : undefined,
          );
        }
        // After failures, back off exponentially or as the server asked (never past the deadline);
        // after progress, reconnect at once (the link works, it just drops).
        const delayMs = Math.max(
          0,
          Math.min(
            mirrors && mirrors.size > 1
              ? Math.max(mirrors.waitFor(url), 100)
              : retryDelay(consecutiveFailures, failure?.retryAfterMs, backoff),
            giveUpAt - Date.now(),
          ),
        );
        opts.onWait?.({
          url,
          cause: failure?.cause,
          message: failure?.error.message ?? 'no progress',
          delayMs,
          attempt: consecutiveFailures,
          giveUpAt,
        });
        await sleep(delayMs, signal);
      }
    }
  } finally {
    await part.close().catch(() => {});
  }
}
