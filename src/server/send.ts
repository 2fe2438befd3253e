/**
 * Sends one entity (a file or a generated body) with the HTTP semantics a
 * resuming downloader depends on: strong validators, conditional GET,
 * single byte ranges with If-Range, HEAD, and never any content coding.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ifRangeMatches, isNotModified, type Validators } from './conditional.js';
import { parseRange } from './range.js';

export interface Entity extends Validators {
  size: number;
  contentType: string;
  cacheControl: string;
  /** The bytes from `start` to `end` inclusive. */
  body(start: number, end: number): Readable;
}

export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/** Cached copies must be revalidated (a cheap 304) before each use. */
export const CACHE_REVALIDATE = 'no-cache';

/**
 * Passes the body through and fails if it is shorter than Content-Length
 * said (a file truncated in place under us): the failure closes the
 * connection, the one way a client can tell a short body from a whole one.
 */
function exactly(expected: number) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    let sent = 0;
    for await (const chunk of source) {
      sent += chunk.length;
      yield chunk;
    }
    if (sent !== expected) throw new Error(`body has ${sent} bytes, ${expected} announced`);
  };
}

export async function sendEntity(req: IncomingMessage, res: ServerResponse, entity: Entity): Promise<void> {
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('ETag', entity.etag);
  res.setHeader('Last-Modified', entity.lastModified.toUTCString());
  res.setHeader('Cache-Control', entity.cacheControl);
  res.setHeader('X-Content-Type-Options', 'nosniff');

  if (isNotModified(req.headers, entity)) {
    res.statusCode = 304;
    res.end();
    return;
  }

  // a Range whose If-Range does not match is ignored: the client gets the whole new file
  const ifRange = req.headers['if-range'];
  // a repeated If-Range, joined, never equals one ETag: the whole file is sent
  const range = ifRangeMatches(Array.isArray(ifRange) ? ifRange.join(', ') : ifRange, entity)
    ? parseRange(req.headers.range, entity.size)
    : ({ kind: 'full' } as const);

  if (range.kind === 'unsatisfiable') {
    const text = 'requested range not satisfiable\n';
    res.statusCode = 416;
    res.setHeader('Content-Range', `bytes */${entity.size}`);
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(text));
    res.end(req.method === 'HEAD' ? undefined : text);
    return;
  }

  let start = 0;
  let end = entity.size - 1;
  if (range.kind === 'partial') {
    ({ start, end } = range);
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${entity.size}`);
  } else {
    res.statusCode = 200;
  }
  res.setHeader('Content-Type', entity.contentType);
  res.setHeader('Content-Length', end - start + 1);

  if (req.method === 'HEAD' || end < start) {
    res.end();
    return;
  }
  const expected = end - start + 1;
  try {
    await pipeline(entity.body(start, end), exactly(expected), res);
  } catch {
    // the client went away or the read failed mid-body; headers are gone, so the
    // only honest signal left is a connection closed before Content-Length bytes
    res.destroy();
  }
}
