/**
 * Bounds on what smart HTTP may cost the host. Every `/git/` request runs
 * a `git http-backend` (plus upload-pack and pack-objects, several MB
 * each), so an unbounded number of them is a way to exhaust memory and
 * processes with cheap requests. Three limits:
 *
 * - a request body (the client's wants and haves) is read into memory,
 *   whole, before any process starts, within a short deadline and a size
 *   cap: a client that sends half a POST and waits holds a socket and a
 *   buffer for at most the deadline, never a process;
 * - at most `max` backends run at once; a request beyond that waits in a
 *   short queue, and beyond the queue's length or wait gets 503 with
 *   Retry-After, which git reports and a replica retries on its next run;
 * - all bodies being read share one memory budget.
 */
import { availableParallelism } from 'node:os';
import type { IncomingMessage } from 'node:http';

export interface BackendLimitOptions {
  /** Backends running at once; default twice the CPUs, at least 2. */
  max?: number | undefined;
  /** Requests that may wait for a backend; default 4 x max. */
  queue?: number | undefined;
  /** How long a request may wait for a backend before 503; default 10 s. */
  queueWaitMs?: number | undefined;
  /** A request body must have arrived whole within this time (from the request's start); default 30 s. */
  bodyDeadlineMs?: number | undefined;
  /** Largest request body taken; default 16 MiB (git's negotiation rarely sends more than a few hundred KiB). */
  maxBodyBytes?: number | undefined;
  /** Bytes of request bodies held at once, across all requests; default 128 MiB. */
  bodyBudgetBytes?: number | undefined;
}

export function defaultBackends(): number {
  return Math.max(2, 2 * availableParallelism());
}

/** Seconds a refused client is told to wait: about what one queue wait lasts. */
export function retryAfterSeconds(limits: BackendLimits): number {
  return Math.max(1, Math.ceil(limits.queueWaitMs / 1000));
}

type BodyResult = { ok: true; body: Buffer } | { ok: false; status: 408 | 413 | 503 | 400; reason: string };

type Waiter = { grant: (release: () => void) => void; timer: NodeJS.Timeout };

export class BackendLimits {
  readonly max: number;
  readonly queue: number;
  readonly queueWaitMs: number;
  readonly bodyDeadlineMs: number;
  readonly maxBodyBytes: number;
  readonly bodyBudgetBytes: number;
  private active = 0;
  private readonly waiters: Waiter[] = [];
  private buffered = 0;
  /** Requests answered 503 because no backend was free in time, and 408/413 bodies refused. */
  refused = 0;

  constructor(opts: BackendLimitOptions = {}) {
    this.max = opts.max ?? defaultBackends();
    this.queue = opts.queue ?? 4 * this.max;
    this.queueWaitMs = opts.queueWaitMs ?? 10_000;
    this.bodyDeadlineMs = opts.bodyDeadlineMs ?? 30_000;
    this.maxBodyBytes = opts.maxBodyBytes ?? 16 << 20;
    this.bodyBudgetBytes = opts.bodyBudgetBytes ?? 128 << 20;
  }

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * A release function once a backend may start, or null when none became
   * free in time (or the queue is full, or `signal` aborted: the client left).
   */
  acquire(signal: AbortSignal): Promise<(() => void) | null> {
    if (signal.aborted) return Promise.resolve(null);
    if (this.active < this.max) return Promise.resolve(this.take());
    if (this.waiters.length >= this.queue) {
      this.refused += 1;
      return Promise.resolve(null);
    }
    return new Promise((resolve) => {
      const leave = (counted: boolean) => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        clearTimeout(waiter.timer);
        signal.removeEventListener('abort', onAbort);
        if (counted) this.refused += 1;
        resolve(null);
      };
      const onAbort = () => leave(false);
      const waiter: Waiter = {
        grant: (release) => {
          clearTimeout(waiter.timer);
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
        timer: setTimeout(() => leave(true), this.queueWaitMs),
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private take(): () => void {
    this.active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      const next = this.waiters.shift();
      if (next) next.grant(this.take());
    };
  }

  /**
   * Reads a request body whole, within the deadline, the size cap and the
   * shared budget. The deadline runs from when the request arrived, so a
   * client cannot stretch it by trickling bytes.
   */
  readBody(req: IncomingMessage): Promise<BodyResult> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const finish = (result: BodyResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('aborted', onError);
        this.buffered -= size;
        if (!result.ok) {
          if (result.status !== 400) this.refused += 1;
          // stop reading: the connection closes after the refusal
          req.pause();
        }
        resolve(result);
      };
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        this.buffered += chunk.length;
        if (size > this.maxBodyBytes)
          return finish({ ok: false, status: 413, reason: `request body larger than ${this.maxBodyBytes >> 20} MiB` });
        if (this.buffered > this.bodyBudgetBytes)
          return finish({ ok: false, status: 503, reason: 'too many request bodies in memory at once' });
        chunks.push(chunk);
      };
      const onEnd = () => finish({ ok: true, body: Buffer.concat(chunks, size) });
      const onError = () => finish({ ok: false, status: 400, reason: 'the client went away mid-body' });
      const timer = setTimeout(
        () =>
          finish({
            ok: false,
            status: 408,
            reason: `the request body did not arrive within ${Math.round(this.bodyDeadlineMs / 1000)} s`,
          }),
        this.bodyDeadlineMs,
      );
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('aborted', onError);
    });
  }
}
