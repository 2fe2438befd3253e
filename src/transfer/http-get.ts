/**
 * One GET over node's own http and https modules, with the rules every
 * download keeps: a timeout for each phase (lookup, connect, TLS handshake,
 * sending, waiting for the headers) and optionally for the whole exchange,
 * at most MAX_REDIRECTS redirects each passed to a check before it is
 * followed, no decompression, no retry, no status turned into an error.
 *
 * got did this before, and loading it (with its dependencies) cost every
 * `pull` about 80 ms of a 0.5 s budget before the first byte was asked for;
 * the part of got we used is the part below. Failures keep got's shape
 * (a request error carrying the system error's code, a timeout naming its
 * phase, too many redirects) so failure.ts sorts them as before.
 */
import * as http from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { Readable } from 'node:stream';

/** As many hops as got followed by default. */
export const MAX_REDIRECTS = 5;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** A request that failed before or while its response arrived; `code` is the system error's (ECONNREFUSED...). */
export class HttpRequestError extends Error {
  readonly code: string;
  constructor(cause: Error & { code?: unknown }) {
    super(cause.message, { cause });
    this.name = 'HttpRequestError';
    this.code = typeof cause.code === 'string' ? cause.code : 'ERR_HTTP_REQUEST';
  }
}

/** A phase of the exchange took longer than allowed. */
export class HttpTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(
    readonly event: 'lookup' | 'connect' | 'secureConnect' | 'send' | 'response' | 'request',
    ms: number,
  ) {
    super(`Timeout awaiting '${event}' for ${ms}ms`);
    this.name = 'HttpTimeoutError';
  }
}

export class TooManyRedirectsError extends Error {
  readonly code = 'ERR_TOO_MANY_REDIRECTS';
  constructor(max: number) {
    super(`Redirected ${max} times. Aborting.`);
    this.name = 'TooManyRedirectsError';
  }
}

export interface GetTimeouts {
  lookupMs: number;
  connectMs: number;
  secureConnectMs: number;
  sendMs: number;
  responseMs: number;
  /** The whole exchange, redirects and body included. */
  totalMs?: number | undefined;
}

export interface GetOptions {
  headers: Record<string, string>;
  timeouts: GetTimeouts;
  /** Called before each redirect is followed; a throw refuses it (the error is the request's). */
  beforeRedirect: (to: URL, from: URL) => void;
  /** Before the headers, an abort ends the request with the signal's reason; after them, the body is the caller's. */
  signal?: AbortSignal | undefined;
}

export interface GetResponse {
  /** The body; destroying it closes the connection. */
  body: Readable;
  status: number;
  headers: http.IncomingHttpHeaders;
}

type Requester = typeof http.request;
let httpsRequest: Requester | undefined;

/** node:https (and TLS with it) is loaded for the first https URL only. */
async function requesterFor(url: URL): Promise<Requester> {
  if (url.protocol === 'http:') return http.request;
  if (url.protocol === 'https:') return (httpsRequest ??= (await import('node:https')).request);
  throw Object.assign(new Error(`Unsupported protocol "${url.protocol}"`), { code: 'ERR_UNSUPPORTED_PROTOCOL' });
}

/**
 * Sends the GET and resolves once the headers of the final response are in
 * (after any redirects). Rejects with HttpRequestError, HttpTimeoutError,
 * TooManyRedirectsError, or what `beforeRedirect` threw.
 */
export async function httpGet(url: string, opts: GetOptions): Promise<GetResponse> {
  let current = new URL(url);
  const deadline = opts.timeouts.totalMs;
  const started = Date.now();
  for (let hops = 0; ; hops++) {
    const request = await requesterFor(current);
    const left = deadline === undefined ? undefined : Math.max(0, deadline - (Date.now() - started));
    const res = await oneRequest(request, current, opts, left);
    const location = res.headers.location;
    if (!REDIRECT_STATUSES.has(res.status) || location === undefined) return res;
    res.body.destroy();
    if (hops >= MAX_REDIRECTS) throw new TooManyRedirectsError(MAX_REDIRECTS);
    // a Location header is bytes; read them as UTF-8, as browsers (and got) do
    const next = new URL(Buffer.from(location, 'latin1').toString('utf8'), current);
    opts.beforeRedirect(next, current);
    if (next.origin === current.origin && !next.username && !next.password) {
      // credentials given in the first URL go on to the same host, never to another
      next.username = current.username;
      next.password = current.password;
    }
    current = next;
  }
}

function oneRequest(request: Requester, url: URL, opts: GetOptions, totalMs: number | undefined): Promise<GetResponse> {
  return new Promise((resolve, reject) => {
    const t = opts.timeouts;
    const timers = new Set<NodeJS.Timeout>();
    let settled = false;
    let body: http.IncomingMessage | undefined;
    const clearAll = (): void => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    };
    const settle = (): void => {
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      clearAll();
      if (body) body.destroy(err);
      else req.destroy(err);
      if (!settled) {
        settle();
        reject(err);
      }
    };
    const onAbort = (): void => {
      const reason: unknown = opts.signal?.reason;
      fail(reason instanceof Error ? reason : new Error('aborted'));
    };
    /** A timer for one phase; returns its cancel. */
    const phase = (event: HttpTimeoutError['event'], ms: number): (() => void) => {
      const timer = setTimeout(() => fail(new HttpTimeoutError(event, ms)), ms);
      timers.add(timer);
      return () => {
        clearTimeout(timer);
        timers.delete(timer);
      };
    };
    let deadline: NodeJS.Timeout | undefined;

    const req = request(url, { method: 'GET', headers: opts.headers });
    req.on('error', (err: Error) => fail(err instanceof HttpTimeoutError ? err : new HttpRequestError(err)));
    if (opts.signal?.aborted) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (totalMs !== undefined) {
      deadline = setTimeout(() => fail(new HttpTimeoutError('request', totalMs)), totalMs);
      timers.add(deadline);
    }

    req.once('socket', (socket: Socket) => {
      const awaitResponse = (): void => {
        if (!body) req.once('response', phase('response', t.responseMs));
      };
      const startSend = (): void => {
        if (req.writableFinished) return awaitResponse();
        const sent = phase('send', t.sendMs);
        req.once('finish', () => {
          sent();
          awaitResponse();
        });
      };
      if (!socket.connecting) {
        // a kept-alive connection: nothing to look up or connect
        startSend();
        return;
      }
      const connect = (): void => {
        const connected = phase('connect', t.connectMs);
        socket.once('connect', () => {
          connected();
          if (url.protocol !== 'https:') return startSend();
          const secured = phase('secureConnect', t.secureConnectMs);
          socket.once('secureConnect', () => {
            secured();
            startSend();
          });
        });
      };
      // an address needs no lookup (and the socket emits none)
      if (isIP(url.hostname.replace(/^\[|\]$/g, ''))) return connect();
      const looked = phase('lookup', t.lookupMs);
      socket.once('lookup', () => {
        looked();
        connect();
      });
    });

    req.once('response', (res: http.IncomingMessage) => {
      body = res;
      // errors after the caller stopped listening (a late reset on a body it destroyed) are not uncaught
      res.on('error', () => {});
      // every phase is over (a phase whose event never came must not fire mid-body); the
      // whole-exchange deadline, if any, runs on until the body is done
      for (const timer of timers) if (timer !== deadline) clearTimeout(timer);
      timers.clear();
      if (deadline) timers.add(deadline);
      res.once('close', clearAll);
      settle();
      resolve({ body: res, status: res.statusCode ?? 0, headers: res.headers });
    });
    req.end();
  });
}
