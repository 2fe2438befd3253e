/**
 * When to try again: exponential backoff with full jitter, and the server's
 * own Retry-After when it sends one. Shared by every retry loop in
 * src/transfer so they all back off the same way (and tests can make the
 * waits tiny through one option).
 */

export interface BackoffOptions {
  /** First delay ceiling; the n-th consecutive failure waits up to base * 2^n. */
  baseMs: number;
  /** Ceiling for the exponential part. */
  capMs: number;
  /** Longest we honour a server's Retry-After; a misconfigured origin must not park us for hours. */
  retryAfterCapMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  baseMs: 200,
  capMs: 5_000,
  retryAfterCapMs: 60_000,
};

export function resolveBackoff(partial: Partial<BackoffOptions> | undefined): BackoffOptions {
  return { ...DEFAULT_BACKOFF, ...stripUndefined(partial ?? {}) };
}

/**
 * Full jitter (a uniform draw in [0, min(cap, base * 2^n)]): many replicas
 * that lost the same origin at the same moment must not come back in step.
 */
export function backoffDelay(
  consecutiveFailures: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(Math.max(consecutiveFailures, 0), 30));
  return Math.floor(random() * exp);
}

/** The wait before the next attempt: the server's Retry-After (capped) wins over our own guess. */
export function retryDelay(
  consecutiveFailures: number,
  retryAfterMs: number | undefined,
  opts: BackoffOptions,
): number {
  if (retryAfterMs !== undefined) return Math.min(Math.max(retryAfterMs, 0), opts.retryAfterCapMs);
  return backoffDelay(consecutiveFailures, opts);
}

/** Retry-After is either delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const trimmed = v.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(at - now, 0);
}

/** setTimeout as a promise that rejects with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
