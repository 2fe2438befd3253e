/**
 * The one HTTP client for everything bundlemirror downloads: one user agent,
 * explicit timeouts, no retry of its own (it would replay the original Range
 * header; our loops compute the offset from the bytes on disk instead), no
 * transparent decompression (a bundle's sha256 is over the bytes as
 * stored), and one rule for where a redirect may lead. The request itself
 * is http-get.ts; which failures are worth another attempt is failure.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { BundlemirrorError } from '../errors.js';
import { VERSION } from '../version.js';
import { redactUrl } from '../format/untrusted.js';
import { openFileResponse } from './file-response.js';
import { httpGet } from './http-get.js';

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

export interface OpenedResponse {
  /** The body stream; paused until a 'data' listener is attached. Destroy it when not reading it. */
  body: Readable;
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
  // a file: URL has no host to stay on: without a rule it may read its own directory only
  return { roots: [new URL(isFileUrl(url) ? '.' : '/', url).toString()] };
}

function isFileUrl(url: string): boolean {
  return /^file:/i.test(url);
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
export async function openResponse(url: string, opts: OpenOptions): Promise<OpenedResponse> {
  const t = opts.timeouts;
  const rule = opts.redirects ?? sameOrigin(url);
  if (isFileUrl(url)) return openFileResponse(url, rule, opts.headers, opts.signal);
  const res = await httpGet(url, {
    headers: { ...opts.headers, 'user-agent': USER_AGENT },
    timeouts: { ...t, totalMs: opts.totalMs },
    signal: opts.signal,
    beforeRedirect: (to, from) => {
      if (redirectAllowed(to, rule)) return;
      throw new BundlemirrorError(
        'E_REDIRECT',
        `GET ${redactUrl(url)}: ${redactUrl(from.toString())} redirects to ${redactUrl(to.toString())}, which is outside ${rule.roots.map(redactUrl).join(' and ')}`,
        {
          repo: rule.repo,
          hint: 'the server sent us somewhere this replica does not fetch from; if that place is yours, list it in [bundlemirror] redirects',
        },
      );
    },
  });
  const body = res.body;
  const signal = opts.signal;
  if (signal) {
    const onAbort = (): void => {
      body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      // unhook on whichever comes first, or a long-lived daemon signal collects listeners
      const unhook = (): void => signal.removeEventListener('abort', onAbort);
      body.once('end', unhook);
      body.once('error', unhook);
      body.once('close', unhook);
    }
  }
  return { body, status: res.status, headers: res.headers };
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
