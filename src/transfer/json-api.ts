/**
 * Small JSON requests to a bundlemirror service (the on-demand API): a
 * bounded body, a deadline per exchange, and our own retries for the
 * network failures a bad link produces. HTTP statuses are the caller's to
 * interpret (a 4xx from the service carries a JSON error with a code).
 */
import { BundlemirrorError } from '../errors.js';
import { retryDelay, resolveBackoff, sleep } from './backoff.js';
import { USER_AGENT } from './http.js';
import { failureFromError } from './failure.js';
import { HttpRequestError, HttpTimeoutError } from './http-get.js';

export interface JsonResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed body; null when the body was not JSON. */
  body: unknown;
}

export interface JsonRequestOptions {
  method?: 'GET' | 'POST';
  json?: unknown;
  timeoutMs?: number;
  /** Further attempts after a network failure (default 8). */
  retries?: number;
  signal?: AbortSignal;
}

const MAX_BODY = 1 << 20;

export async function requestJson(url: string, opts: JsonRequestOptions = {}): Promise<JsonResponse> {
  // got is loaded for this API only: the downloads every command makes do without it (http-get.ts)
  const { default: got, RequestError, TimeoutError } = await import('got');
  const retries = opts.retries ?? 8;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const backoff = resolveBackoff({ baseMs: 250 });
  for (let attempt = 0; ; attempt++) {
    opts.signal?.throwIfAborted();
    try {
      const res = await got(url, {
        method: opts.method ?? 'GET',
        ...(opts.json !== undefined ? { json: opts.json } : {}),
        headers: { 'user-agent': USER_AGENT, accept: 'application/json' },
        throwHttpErrors: false,
        followRedirect: false,
        retry: { limit: 0 },
        timeout: { request: timeoutMs },
        signal: opts.signal,
        responseType: 'buffer',
      });
      if (res.rawBody.length > MAX_BODY)
        throw new BundlemirrorError('E_HTTP', `${url}: answer larger than ${MAX_BODY} bytes`);
      let body: unknown = null;
      try {
        body = JSON.parse(res.rawBody.toString('utf8'));
      } catch {
        body = null;
      }
      return { status: res.statusCode, headers: res.headers, body };
    } catch (err) {
      opts.signal?.throwIfAborted();
      // got's errors in the shape failure.ts sorts
      const sorted =
        err instanceof TimeoutError
          ? new HttpTimeoutError(err.event as HttpTimeoutError['event'], timeoutMs)
          : err instanceof RequestError
            ? new HttpRequestError(err)
            : err;
      const f = failureFromError(url, sorted, 'E_HTTP');
      if (!f.retryable || attempt >= retries) throw f.error;
      await sleep(retryDelay(attempt, undefined, backoff), opts.signal);
    }
  }
}
