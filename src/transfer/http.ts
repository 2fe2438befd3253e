/**
 * The one HTTP client for everything bundlemirror downloads: one user agent,
 * explicit timeouts (got has none by default), got's own retry switched off
 * (it would replay the original Range header; our loops compute the offset
 * from the bytes on disk instead), no transparent decompression (a bundle's
 * sha256 is over the bytes as stored), and one place that decides which
 * failures are worth another attempt.
 */
import type { IncomingHttpHeaders } from 'node:http';
import got, { RequestError, TimeoutError, MaxRedirectsError, type Request as GotRequest } from 'got';
import { BundlemirrorError, type ErrorCode } from '../errors.js';
import { parseRetryAfter } from './backoff.js';
import { VERSION } from '../version.js';
import { redactUrl } from '../format/untrusted.js';

export const USER_AGENT = `bundlemirror/${VERSION}`;

export interface HttpTimeouts {
  /** DNS lookup. */
  lookupMs: number;
  /** TCP connect. */
  connectMs: number;
  /** TLS handshake. */
  secureConnectMs: number;
  /** Writing the request. */
  sendMs: number;
  /** From request sent to response headers received. */
  responseMs: number;
  /** No body bytes for this long while receiving: the transfer has stalled. */
  idleMs: number;
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = {
  lookupMs: 10_000,
  connectMs: 15_000,
  secureConnectMs: 15_000,
  sendMs: 30_000,
  responseMs: 30_000,
  idleMs: 30_000,
};

/**
 * BUNDLEMIRROR_IDLE_TIMEOUT_MS, when set, replaces the default "nothing
 * arrived for this long" timeouts (before the response headers and between
 * body bytes): the one knob for a link whose stalls must be noticed sooner
 * (or later) than 30 s. Read here only; explicit options still win. The
 * reliability tests set it so a stalled connection costs a second, not 30.
 */
export function timeoutsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<HttpTimeouts> {
  const raw = env.BUNDLEMIRROR_IDLE_TIMEOUT_MS;
  if (raw === undefined || !/^\d+$/.test(raw.trim()) || Number(raw) <= 0) return {};
  const ms = Number(raw);
  return { idleMs: ms, responseMs: ms };
}

export function resolveTimeouts(partial: Partial<HttpTimeouts> | undefined): HttpTimeouts {
  const out = { ...DEFAULT_TIMEOUTS, ...timeoutsFromEnv() };
  for (const [k, v] of Object.entries(partial ?? {})) {
    if (typeof v === 'number') out[k as keyof HttpTimeouts] = v;
  }
  return out;
}

const client = got.extend({
  headers: { 'user-agent': USER_AGENT },
  retry: { limit: 0 },
  decompress: false,
  throwHttpErrors: false,
  followRedirect: true,
  maxRedirects: 5,
});

/** Raised by our own idle watchdog: headers arrived, then the bytes stopped. */
export class StallError extends Error {
  readonly code = 'E_STALL';
  constructor(readonly idleMs: number) {
    super(`no data for ${idleMs} ms`);
    this.name = 'StallError';
  }
}

export interface OpenedResponse {
  /** The body stream; paused until a 'data' listener is attached. Destroy it when not reading it. */
  body: GotRequest;
  status: number;
  headers: IncomingHttpHeaders;
}

/**
 * Where a redirect may lead. Every hop must be on the same scheme, host and
 * port as one of `roots` and under its path; without a rule, a hop must stay
 * on the first URL's scheme, host and port. A redirect is the server
 * choosing where we connect next: unchecked, a hostile origin points the
 * replica at its own network (or at file it should not fetch) although the
 * first URL passed every check.
 */
export interface RedirectRule {
  roots: readonly string[];
  /** The repository the request is for (named in the error). */
  repo?: string | undefined;
}

function redirectAllowed(to: URL, rule: RedirectRule): boolean {
  return rule.roots.some((r) => {
    let root: URL;
    try {
      root = new URL(r);
    } catch {
      return false;
    }
    const dir = root.pathname.replace(/\/*$/, '/');
    return to.protocol === root.protocol && to.host === root.host && (to.pathname + '/').startsWith(dir);
  });
}

function sameOrigin(url: string): RedirectRule {
  return { roots: [new URL('/', url).toString()] };
}

export interface OpenOptions {
  /** Where redirects may lead (default: the first URL's origin only). */
  redirects?: RedirectRule | undefined;
  headers: Record<string, string>;
  timeouts: HttpTimeouts;
  signal?: AbortSignal | undefined;
  /** Deadline for the whole exchange, body included (small documents only). */
  totalMs?: number | undefined;
}

/**
 * Sends a GET and resolves once the response headers are in. The caller
 * owns the body stream from then on. An abort of `signal` destroys the
 * stream with the signal's reason, before or after the headers.
 */
export function openResponse(url: string, opts: OpenOptions): Promise<OpenedResponse> {
  const t = opts.timeouts;
  const rule = opts.redirects ?? sameOrigin(url);
  const body = client.stream(url, {
    hooks: {
      beforeRedirect: [
        (next, response) => {
          const to = next.url instanceof URL ? next.url : new URL(String(next.url));
          if (redirectAllowed(to, rule)) return;
          const from = redactUrl(response.url || url);
          throw new BundlemirrorError(
            'E_REDIRECT',
            `GET ${redactUrl(url)}: ${from} redirects to ${redactUrl(to.toString())}, which is outside ${rule.roots.map(redactUrl).join(' and ')}`,
            {
              repo: rule.repo,
              hint: 'the server sent us somewhere this replica does not fetch from; if that place is yours, list it in [bundlemirror] redirects',
            },
          );
        },
      ],
    },
    headers: opts.headers,
    timeout: {
      lookup: t.lookupMs,
      connect: t.connectMs,
      secureConnect: t.secureConnectMs,
      send: t.sendMs,
      response: t.responseMs,
      ...(opts.totalMs !== undefined ? { request: opts.totalMs } : {}),
    },
  });
  // Errors after the caller stopped listening (e.g. a late socket reset on a
  // stream it destroyed) must not become uncaught exceptions.
  body.on('error', () => {});
  const signal = opts.signal;
  if (signal) {
    const onAbort = (): void => {
      body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      // got streams do not always emit 'close' after a clean end: unhook on
      // whichever comes first, or a long-lived daemon signal collects listeners.
      const unhook = (): void => signal.removeEventListener('abort', onAbort);
      body.once('end', unhook);
      body.once('error', unhook);
      body.once('close', unhook);
    }
  }
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    body.once('error', onError);
    body.once('response', (res: { statusCode: number; headers: IncomingHttpHeaders }) => {
      body.off('error', onError);
      resolve({ body, status: res.statusCode, headers: res.headers });
    });
  });
}

/** What kind of trouble a failure is, so a message can say what we wait for and what the user can do. */
export type FailureCause =
  | 'refused'
  | 'unreachable'
  | 'dns'
  | 'timeout'
  | 'stall'
  | 'dropped'
  | 'server-error'
  | 'throttled'
  | 'not-found'
  | 'other';

/** A failed attempt, and whether another attempt could succeed. */
export interface Failure {
  error: BundlemirrorError;
  retryable: boolean;
  /** The server asked us to wait this long (Retry-After). */
  retryAfterMs?: number | undefined;
  cause?: FailureCause | undefined;
}

/** What a waiting download tells the person watching: why it waits. */
export function describeCause(cause: FailureCause | undefined): string {
  switch (cause) {
    case 'refused':
      return 'the server is down (connection refused)';
    case 'unreachable':
      return 'the network cannot reach the server';
    case 'dns':
      return 'the host name does not resolve';
    case 'timeout':
      return 'the server does not answer';
    case 'stall':
      return 'the transfer stalled';
    case 'dropped':
      return 'the connection dropped';
    case 'server-error':
      return 'the server answers with errors';
    case 'throttled':
      return 'the server asks us to slow down';
    case 'not-found':
      return 'the file is not there';
    default:
      return 'the transfer failed';
  }
}

/** What the user can do about a cause, when retrying did not help. */
export function adviceFor(cause: FailureCause | undefined): string {
  switch (cause) {
    case 'refused':
    case 'timeout':
      return 'the server is down or not listening; check that it runs, or wait until it is back';
    case 'dns':
      return 'check the host name in the URL, and the DNS of this machine';
    case 'unreachable':
      return 'check the network between this machine and the server';
    case 'server-error':
    case 'throttled':
      return 'the server is overloaded or failing; try again later';
    case 'not-found':
      return 'check the URL';
    default:
      return 'the link keeps failing; try again when it is better';
  }
}

const STATUS_TEXT: Record<number, string> = {
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  410: 'Gone',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Classifies a response status we did not ask for. */
export function failureFromStatus(url: string, status: number, headers: IncomingHttpHeaders): Failure {
  const what = `GET ${url} answered ${status}${STATUS_TEXT[status] ? ` ${STATUS_TEXT[status]}` : ''}`;
  if (status === 404 || status === 410) {
    return {
      retryable: false,
      cause: 'not-found',
      error: new BundlemirrorError('E_NOT_FOUND', what, {
        hint: 'the origin no longer publishes this file; check the remote URL, or pull again once the origin has republished',
      }),
    };
  }
  if (status === 408 || status === 429 || status >= 500) {
    return {
      retryable: true,
      cause: status === 429 ? 'throttled' : 'server-error',
      retryAfterMs: status === 429 || status === 503 ? parseRetryAfter(headers['retry-after']) : undefined,
      error: new BundlemirrorError('E_HTTP', what, { hint: 'the origin is overloaded or failing; try again later' }),
    };
  }
  return {
    retryable: false,
    error: new BundlemirrorError('E_HTTP', what, {
      hint:
        status === 401 || status === 403
          ? 'the origin refuses this client; check access to the remote'
          : 'check the remote URL and the origin server',
    }),
  };
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Classifies an error thrown while connecting or receiving. Network trouble
 * is retryable; a malformed URL or a redirect loop is not. Errors that are
 * not about the network (disk, programming errors) are not classified here:
 * they are returned as not retryable with their original cause.
 */
export function failureFromError(url: string, err: unknown, code: ErrorCode): Failure {
  if (err instanceof BundlemirrorError) return { error: err, retryable: false };
  // our own refusal from inside got (a redirect hook), wrapped by got
  if (err instanceof RequestError && err.cause instanceof BundlemirrorError)
    return { error: err.cause, retryable: false };
  if (err instanceof StallError) {
    return {
      retryable: true,
      cause: 'stall',
      error: new BundlemirrorError(code, `GET ${url}: the transfer stalled (${err.message})`, {
        hint: 'the link stopped delivering data; the next attempt resumes where this one stopped',
        cause: err,
      }),
    };
  }
  if (err instanceof MaxRedirectsError) {
    return {
      retryable: false,
      error: new BundlemirrorError('E_HTTP', `GET ${url}: too many redirects`, {
        hint: 'check the remote URL',
        cause: err,
      }),
    };
  }
  if (err instanceof TimeoutError) {
    return {
      retryable: true,
      cause: err.event === 'response' || err.event === 'send' ? 'stall' : 'timeout',
      error: new BundlemirrorError(code, `GET ${url}: timed out (${err.event})`, {
        hint: 'the origin is slow or unreachable; the next attempt resumes where this one stopped',
        cause: err,
      }),
    };
  }
  const errno = (err as { code?: unknown } | null)?.code;
  const codeText = typeof errno === 'string' ? errno : '';
  if (codeText.startsWith('ERR_INVALID') || codeText === 'ERR_UNSUPPORTED_PROTOCOL') {
    return {
      retryable: false,
      error: new BundlemirrorError('E_HTTP', `GET ${url}: ${(err as Error).message}`, {
        hint: 'check the remote URL',
        cause: err,
      }),
    };
  }
  if (err instanceof RequestError || TRANSIENT_CODES.has(codeText) || codeText.startsWith('HPE_')) {
    const cause = causeOfErrno(codeText);
    return {
      retryable: true,
      cause,
      error: new BundlemirrorError(code, `GET ${url}: ${(err as Error).message}${codeText ? ` (${codeText})` : ''}`, {
        hint:
          cause === 'dropped'
            ? 'the network dropped the transfer; the next attempt resumes where this one stopped'
            : adviceFor(cause),
        cause: err,
      }),
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { retryable: false, error: new BundlemirrorError(code, `GET ${url}: ${message}`, { cause: err }) };
}

function causeOfErrno(code: string): FailureCause {
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns';
  if (code === 'ENETUNREACH' || code === 'ENETDOWN' || code === 'EHOSTUNREACH' || code === 'EHOSTDOWN')
    return 'unreachable';
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'dropped';
}

/** A single header value (Node gives arrays for repeated headers). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Content-Length as a number, when present and sane. */
export function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const v = headerValue(headers, 'content-length');
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

/** True when the body arrives encoded (gzip, br...): its bytes are not the file's bytes. */
export function isEncoded(headers: IncomingHttpHeaders): boolean {
  const v = headerValue(headers, 'content-encoding');
  return v !== undefined && v.trim() !== '' && v.trim().toLowerCase() !== 'identity';
}
