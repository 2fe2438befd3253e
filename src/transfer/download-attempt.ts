/**
 * One HTTP exchange of a resumable download: ask for the bytes after those
 * on disk, decide from the status and headers whether the answer may be
 * appended (DESIGN.md, "HTTP resume that never splices two versions of a
 * file"), and stream the body into the partial file. The retry loop in
 * download.ts decides what to do with the outcome.
 */
import { BundlemirrorError } from '../errors.js';
import {
  contentLength,
  headerValue,
  isEncoded,
  openResponse,
  type HttpTimeouts,
  type OpenedResponse,
  type RedirectRule,
} from './http.js';
import { StallError, failureFromError, failureFromStatus, type Failure } from './failure.js';
import { IdleWatch } from './idle-watch.js';
import type { PartialFile } from './partial-file.js';
import { contradictsValidator, parseContentRange, validatorFromResponse } from './range.js';
import { bundleEtag } from '../manifest/tree.js';

/** Writes are batched to about this size (fewer syscalls, one hash update per batch). */
const WRITE_BATCH = 1 << 20;
/**
 * Above this much received-but-unwritten data we pause the socket. Kept
 * high because bytes buffered inside the HTTP stream are lost when the
 * connection drops, while bytes already handed to us are kept.
 */
const PAUSE_ABOVE = 16 << 20;
/** Longest time received bytes wait in memory before they are written. */
const LINGER_MS = 200;
const RESUME_BELOW = 4 << 20;

export type AttemptOutcome =
  /** Bytes were streamed into the partial; `failure` says why the body stopped early, if it did. */
  | { kind: 'received'; failure?: Failure | undefined; overrun: boolean }
  /** The server says the whole file is already here (416 with our size). */
  | { kind: 'complete' }
  /** The partial was emptied because the answer could not be appended; start again from 0. */
  | { kind: 'restarted'; reason: string }
  /** The server's file has another size than the index promises. */
  | { kind: 'size-mismatch'; serverSize: number }
  /** No usable answer. */
  | { kind: 'failed'; failure: Failure };

export interface AttemptContext {
  url: string;
  redirects?: RedirectRule | undefined;
  part: PartialFile;
  sha256: string;
  expectedSize: number;
  timeouts: HttpTimeouts;
  signal?: AbortSignal | undefined;
  /** If-Range validator for this partial; updated when a 200 starts a new one. */
  validator: string;
  /** Body bytes arrived from the network (whether kept or not). */
  onWire(bytes: number): void;
  /** Bytes were appended to the partial. */
  onWritten(bytes: number): void;
  /** The partial was emptied by this attempt. */
  onDiscard(reason: string): void;
}

export async function runAttempt(ctx: AttemptContext): Promise<AttemptOutcome> {
  const { part, url } = ctx;
  const offset = part.size;
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (offset > 0) {
    headers['range'] = `bytes=${offset}-`;
    headers['if-range'] = ctx.validator;
    part.startHashingPrefix();
  }
  let res: OpenedResponse;
  try {
    res = await openResponse(url, { headers, timeouts: ctx.timeouts, signal: ctx.signal, redirects: ctx.redirects });
  } catch (err) {
    ctx.signal?.throwIfAborted();
    return { kind: 'failed', failure: failureFromError(url, err, 'E_DOWNLOAD') };
  }
  let streaming = false;
  try {
    const decision = await admit(ctx, res, offset);
    if (decision !== 'stream') return decision;
    streaming = true;
    const pumped = await pumpBody(ctx, res);
    ctx.signal?.throwIfAborted();
    return pumped;
  } finally {
    if (!streaming) res.body.destroy();
  }
}

/** Decides whether this response's body may go into the partial, preparing the partial if so. */
async function admit(ctx: AttemptContext, res: OpenedResponse, offset: number): Promise<'stream' | AttemptOutcome> {
  const { part, expectedSize, url } = ctx;
  const h = res.headers;
  const restart = async (reason: string): Promise<AttemptOutcome> => {
    if (part.size > 0) {
      await part.discard();
      ctx.onDiscard(reason);
    }
    return { kind: 'restarted', reason };
  };
  if ((res.status === 200 || res.status === 206) && isEncoded(h)) {
    return {
      kind: 'failed',
      failure: {
        retryable: false,
        error: new BundlemirrorError(
          'E_HTTP',
          `GET ${url} came back ${headerValue(h, 'content-encoding')}-encoded although identity was asked for`,
          {
            hint: 'configure the server not to compress bundle files',
          },
        ),
      },
    };
  }

  if (res.status === 200) {
    const len = contentLength(h);
    if (len !== undefined && len !== expectedSize) return { kind: 'size-mismatch', serverSize: len };
    // A full body: either we asked for everything, or the server (or If-Range)
    // refused the range. Never append it: start the file over with it.
    if (offset > 0) {
      await part.discard();
      ctx.onDiscard('the server sent the whole file instead of the requested range');
    }
    const validator = validatorFromResponse(h);
    await part.writeValidator(validator);
    ctx.validator = validator ?? bundleEtag(ctx.sha256);
    return 'stream';
  }

  if (res.status === 206) {
    if (offset === 0) return restart('a partial answer (206) to a request without Range');
    const range = parseContentRange(headerValue(h, 'content-range'));
    if (range?.kind !== 'bytes' || range.total === undefined)
      return restart(`unusable Content-Range ${JSON.stringify(headerValue(h, 'content-range') ?? null)}`);
    if (range.total !== expectedSize) return { kind: 'size-mismatch', serverSize: range.total };
    if (range.start !== offset || range.end !== expectedSize - 1) {
      return restart(
        `Content-Range bytes ${range.start}-${range.end}/${range.total} does not continue at byte ${offset}`,
      );
    }
    if (contradictsValidator(h, ctx.validator))
      return restart(`the server's ETag ${headerValue(h, 'etag')} differs from ${ctx.validator}`);
    await part.prefixHashed(ctx.signal);
    return 'stream';
  }

  if (res.status === 416) {
    const range = parseContentRange(headerValue(h, 'content-range'));
    if (range?.kind === 'unsatisfied') {
      if (range.total === expectedSize && part.size === expectedSize) return { kind: 'complete' };
      if (range.total !== expectedSize) return { kind: 'size-mismatch', serverSize: range.total };
    }
    return restart(`the server refused the range starting at byte ${offset} (416)`);
  }

  return { kind: 'failed', failure: failureFromStatus(url, res.status, h) };
}

/** Stops the body on purpose; never reported as a network failure. */
class OverrunStop extends Error {}

/**
 * Streams the body into the partial. Chunks are taken as soon as they
 * arrive (flowing mode) and written in batches, so that when the connection
 * drops every byte the client received is kept; at most expectedSize bytes
 * ever reach the file. Resolves once everything received has been written.
 */
function pumpBody(ctx: AttemptContext, res: OpenedResponse): Promise<AttemptOutcome> {
  const { part, expectedSize, url } = ctx;
  const body = res.body;
  const idleMs = ctx.timeouts.idleMs;
  return new Promise((resolve) => {
    if (body.destroyed || body.readableEnded) {
      // It ended while we prepared the partial (an abort, a reset): its
      // events have already fired and will not fire again.
      resolve({
        kind: 'received',
        overrun: false,
        failure: failureFromError(
          url,
          body.errored ?? Object.assign(new Error('the connection closed'), { code: 'ECONNRESET' }),
          'E_DOWNLOAD',
        ),
      });
      return;
    }
    let accepted = part.size;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let writing = false;
    let paused = false;
    let ended = false;
    let overrun = false;
    let streamError: unknown;
    /** Why we destroyed the body ourselves; wins over whatever error got reports for it. */
    let stopReason: unknown;
    let settled = false;
    /**
     * Small batches still reach the disk within this long: a process killed
     * on a slow link (kill -9, power loss) keeps what it had received.
     */
    let lingerTimer: NodeJS.Timeout | undefined;

    const stop = (reason: unknown): void => {
      if (stopReason === undefined) stopReason = reason;
      body.destroy(reason instanceof Error ? reason : new Error(String(reason)));
    };

    const idle = new IdleWatch(
      idleMs,
      () => stop(new StallError(idleMs)),
      () => paused || ended,
    );

    const finish = (): void => {
      if (settled || !ended || writing || (pendingBytes > 0 && !isDiskError(stopReason))) return;
      settled = true;
      idle.stop();
      clearTimeout(lingerTimer);
      if (isDiskError(stopReason)) {
        resolve({ kind: 'failed', failure: { retryable: false, error: stopReason } });
        return;
      }
      const reason = stopReason instanceof OverrunStop ? undefined : (stopReason ?? streamError);
      if (reason !== undefined) {
        resolve({ kind: 'received', overrun, failure: failureFromError(url, reason, 'E_DOWNLOAD') });
      } else if (part.size < expectedSize && !overrun) {
        resolve({
          kind: 'received',
          overrun,
          failure: {
            retryable: true,
            error: new BundlemirrorError(
              'E_DOWNLOAD',
              `GET ${url}: the response ended at byte ${part.size} of ${expectedSize}`,
              {
                hint: 'the connection closed early; the next attempt resumes where this one stopped',
              },
            ),
          },
        });
      } else {
        resolve({ kind: 'received', overrun });
      }
    };

    const flush = (force = false): void => {
      if (writing || pendingBytes === 0 || isDiskError(stopReason)) return;
      if (!ended && !force && pendingBytes < WRITE_BATCH) {
        lingerTimer ??= setTimeout(() => {
          lingerTimer = undefined;
          flush(true);
        }, LINGER_MS);
        return;
      }
      clearTimeout(lingerTimer);
      lingerTimer = undefined;
      const bufs = pending;
      const n = pendingBytes;
      pending = [];
      pendingBytes = 0;
      writing = true;
      part.append(bufs).then(
        () => {
          writing = false;
          ctx.onWritten(n);
          if (paused && pendingBytes < RESUME_BELOW && !ended) {
            paused = false;
            body.resume();
            idle.touch();
          }
          flush();
          finish();
        },
        (err: unknown) => {
          writing = false;
          // A disk error ends the attempt; bytes still pending are dropped
          // (the next run asks for them again).
          pending = [];
          pendingBytes = 0;
          stopReason =
            err instanceof BundlemirrorError ? err : new BundlemirrorError('E_DISK', String(err), { cause: err });
          ended = true;
          body.destroy();
          finish();
        },
      );
    };

    body.on('data', (chunk: Buffer) => {
      if (ended) return;
      idle.touch();
      ctx.onWire(chunk.length);
      let c = chunk;
      const room = expectedSize - accepted;
      if (c.length > room) {
        c = c.subarray(0, room);
        overrun = true;
      }
      if (c.length > 0) {
        pending.push(c);
        pendingBytes += c.length;
        accepted += c.length;
      }
      if (overrun) {
        // The server sent more than the file can hold: keep exactly
        // expectedSize bytes and let the hash decide.
        stop(new OverrunStop());
        return;
      }
      if (!paused && pendingBytes >= PAUSE_ABOVE) {
        paused = true;
        body.pause();
      }
      flush();
    });
    const onEnd = (): void => {
      ended = true;
      flush();
      finish();
    };
    body.once('end', onEnd);
    body.once('error', (err: unknown) => {
      streamError = err;
      onEnd();
    });
    body.once('close', onEnd);
  });
}

function isDiskError(err: unknown): err is BundlemirrorError {
  return err instanceof BundlemirrorError && err.code === 'E_DISK';
}
