/**
 * Fetches a small document (the manifest, an index.json) whole: a
 * conditional GET so an unchanged manifest costs one round trip, a size cap
 * enforced while the bytes arrive (a broken or hostile origin cannot make us
 * buffer without bound), and a few retries for the failures that are worth
 * one. The body is returned as served (no transparent decompression): the
 * manifest is a .gz file and the caller gunzips it.
 */
import { BundlemirrorError } from '../errors.js';
import { resolveBackoff, retryDelay, sleep, type BackoffOptions } from './backoff.js';
import { DEFAULT_RETRY_FOR_MS, type RetryWait } from './retry-policy.js';
import { formatDuration } from '../format/duration.js';
import type { MirrorSet } from './mirrors.js';
import { IdleWatch } from './idle-watch.js';
import {
  contentLength,
  headerValue,
  openResponse,
  resolveTimeouts,
  type HttpTimeouts,
  type OpenedResponse,
  type RedirectRule,
} from './http.js';
import { StallError, failureFromError, failureFromStatus, type Failure } from './failure.js';

export interface FetchDocumentOptions {
  /** ETag from the last fetch: sent as If-None-Match. */
  etag?: string | undefined;
  /** Last-Modified from the last fetch: sent as If-Modified-Since. */
  lastModified?: string | undefined;
  /** Refuse bodies larger than this. */
  maxBytes: number;
  /** Where redirects may lead (default: the URL's own origin). */
  redirects?: RedirectRule | undefined;
  /** Deadline for one whole exchange, body included (default 60 s). */
  timeoutMs?: number | undefined;
  /** Further attempts after a retryable failure; default: as many as fit in `retryForMs`. */
  retries?: number | undefined;
  /** How long to keep trying a failing server (default DEFAULT_RETRY_FOR_MS). */
  retryForMs?: number | undefined;
  /** Told before each wait between attempts. */
  onWait?: ((w: RetryWait) => void) | undefined;
  signal?: AbortSignal | undefined;
  timeouts?: Partial<HttpTimeouts> | undefined;
  backoff?: Partial<BackoffOptions> | undefined;
}

export type FetchDocumentResult =
  { status: 'unchanged' } | { status: 'ok'; body: Buffer; etag?: string; lastModified?: string };

export async function fetchDocument(url: string, opts: FetchDocumentOptions): Promise<FetchDocumentResult> {
  const retries = opts.retries ?? Infinity;
  const backoff = resolveBackoff(opts.backoff);
  const started = Date.now();
  const giveUpAt = started + (opts.retryForMs ?? DEFAULT_RETRY_FOR_MS);
  for (let attempt = 0; ; attempt += 1) {
    opts.signal?.throwIfAborted();
    const outcome = await fetchOnce(url, opts);
    if (!('retryable' in outcome)) return outcome;
    if (!outcome.retryable) throw outcome.error;
    if (attempt >= retries || Date.now() >= giveUpAt) {
      const e = outcome.error;
      throw new BundlemirrorError(
        e.code,
        `${e.message} (gave up after ${attempt + 1} attempts in ${formatDuration((Date.now() - started) / 1000)})`,
        { hint: e.hint, cause: e },
      );
    }
    const delayMs = Math.max(0, Math.min(retryDelay(attempt, outcome.retryAfterMs, backoff), giveUpAt - Date.now()));
    opts.onWait?.({
      url,
      cause: outcome.cause,
      message: outcome.error.message,
      delayMs,
      attempt: attempt + 1,
      giveUpAt,
    });
    await sleep(delayMs, opts.signal);
  }
}

async function fetchOnce(url: string, opts: FetchDocumentOptions): Promise<FetchDocumentResult | Failure> {
  const timeouts = resolveTimeouts(opts.timeouts);
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (opts.etag) headers['if-none-match'] = opts.etag;
  if (opts.lastModified) headers['if-modified-since'] = opts.lastModified;
  let res: OpenedResponse;
  try {
    res = await openResponse(url, {
      headers,
      timeouts,
      signal: opts.signal,
      totalMs: opts.timeoutMs ?? 60_000,
      redirects: opts.redirects,
    });
  } catch (err) {
    opts.signal?.throwIfAborted();
    return failureFromError(url, err, 'E_HTTP');
  }
  if (res.status === 304) {
    res.body.destroy();
    return { status: 'unchanged' };
  }
  if (res.status !== 200 && res.status !== 203) {
    res.body.destroy();
    return failureFromStatus(url, res.status, res.headers);
  }
  const declared = contentLength(res.headers);
  if (declared !== undefined && declared > opts.maxBytes) {
    res.body.destroy();
    return { retryable: false, error: tooLarge(url, opts.maxBytes, declared) };
  }
  try {
    const body = await readCapped(res, opts.maxBytes, timeouts.idleMs, url);
    const etag = headerValue(res.headers, 'etag');
    const lastModified = headerValue(res.headers, 'last-modified');
    return {
      status: 'ok',
      body,
      ...(etag !== undefined ? { etag } : {}),
      ...(lastModified !== undefined ? { lastModified } : {}),
    };
  } catch (err) {
    opts.signal?.throwIfAborted();
    return failureFromError(url, err, 'E_HTTP');
  }
}

function tooLarge(url: string, maxBytes: number, size?: number): BundlemirrorError {
  return new BundlemirrorError(
    'E_HTTP',
    `GET ${url}: the document is ${size !== undefined ? `${size} bytes` : 'larger than allowed'}, over the ${maxBytes}-byte limit`,
    {
      hint: 'the URL probably points at something other than a bundlemirror manifest or index; check the remote URL',
    },
  );
}

/** Collects the body, refusing it as soon as it passes maxBytes. */
function readCapped(res: OpenedResponse, maxBytes: number, idleMs: number, url: string): Promise<Buffer> {
  const body = res.body;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed: unknown;
    const idle = new IdleWatch(idleMs, () => fail(new StallError(idleMs)));
    const fail = (err: unknown): void => {
      if (failed !== undefined) return;
      failed = err;
      idle.stop();
      body.destroy();
      reject(err);
    };
    body.on('data', (chunk: Buffer) => {
      if (failed !== undefined) return;
      idle.touch();
      size += chunk.length;
      if (size > maxBytes) {
        fail(tooLarge(url, maxBytes));
        return;
      }
      chunks.push(chunk);
    });
    body.once('end', () => {
      if (failed !== undefined) return;
      idle.stop();
      resolve(Buffer.concat(chunks, size));
    });
    body.once('error', (err: unknown) => fail(err));
    body.once('close', () => {
      if (failed === undefined && !body.readableEnded) {
        fail(
          Object.assign(new Error('the connection closed before the document was complete'), {
            code: 'ERR_STREAM_PREMATURE_CLOSE',
          }),
        );
      }
    });
  });
}

export interface HostsFetchOptions extends FetchDocumentOptions {
  /** Checks a document before it is accepted (a signature, say); a throw skips that host for it and tries the next. */
  verify?: ((body: Buffer, url: string) => Promise<void>) | undefined;
  /** Told when a host served the document wrong (its check refused it, or an error that is not the network's). */
  onWrongHost?: ((root: string, error: unknown) => void) | undefined;
  repo?: string | undefined;
}

/**
 * A document from several hosts of one tree (`url` under the primary's
 * root): the best host first; on an error, a refusal by `verify` or a 404
 * (a mirror that is behind), the next one; rounds of all of them, with the
 * hosts' rests between, until one answers or `retryForMs` passes. Only the
 * primary gets the conditional headers (validators are per host).
 */
export async function fetchDocumentFromHosts(
  url: string,
  hosts: MirrorSet | undefined,
  opts: HostsFetchOptions,
): Promise<FetchDocumentResult & { from?: string }> {
  if (!hosts || hosts.size < 2 || hosts.rebase(url, hosts.primary) === null) {
    const r = await fetchDocument(url, opts);
    if (r.status === 'ok' && opts.verify) await opts.verify(r.body, url);
    return r;
  }
  const started = Date.now();
  const giveUpAt = started + (opts.retryForMs ?? DEFAULT_RETRY_FOR_MS);
  let last: unknown;
  for (let round = 1; ; round += 1) {
    const candidates = hosts.candidates(url);
    if (candidates.length === 0) throw last;
    for (const h of candidates) {
      opts.signal?.throwIfAborted();
      const primary = h.root === hosts.primary;
      let r: FetchDocumentResult;
      try {
        r = await fetchDocument(h.url, {
          ...opts,
          retries: 0,
          etag: primary ? opts.etag : undefined,
          lastModified: primary ? opts.lastModified : undefined,
          redirects: primary ? opts.redirects : { roots: [h.root], repo: opts.repo },
        });
      } catch (err) {
        opts.signal?.throwIfAborted();
        last = err;
        const message = err instanceof Error ? err.message : String(err);
        // the network's trouble: that host rests; anything else (a 404 from a host that is behind, a redirect
        // out of its tree): that host is skipped for this document
        if (err instanceof BundlemirrorError && (err.code === 'E_HTTP' || err.code === 'E_DOWNLOAD'))
          hosts.failed(h.root, message);
        else {
          hosts.servedWrong(url, h.root, message);
          if (!(err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND')) opts.onWrongHost?.(h.root, err);
        }
        continue;
      }
      if (r.status === 'ok' && opts.verify) {
        try {
          await opts.verify(r.body, h.url);
        } catch (err) {
          opts.signal?.throwIfAborted();
          last = err;
          hosts.servedWrong(url, h.root, err instanceof Error ? err.message : String(err));
          opts.onWrongHost?.(h.root, err);
          continue;
        }
      }
      hosts.fileDone(h.root, opts.repo);
      return { ...r, from: h.root };
    }
    if (Date.now() >= giveUpAt || hosts.candidates(url).length === 0) throw last;
    const delayMs = Math.max(200, Math.min(hosts.waitFor(url), giveUpAt - Date.now()));
    opts.onWait?.({
      url,
      cause: undefined,
      message: last instanceof Error ? last.message : String(last),
      delayMs,
      attempt: round,
      giveUpAt,
    });
    await sleep(delayMs, opts.signal);
  }
}
