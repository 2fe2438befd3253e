/**
 * Sends one entity (a file or a generated body) with the HTTP semantics a
 * resuming downloader depends on: strong validators, conditional GET,
 * single byte ranges with If-Range, HEAD, and never any content coding.
 */
import { read } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ifRangeMatches, isNotModified, type Validators } from './conditional.js';
import { parseRange } from './range.js';

export interface Entity extends Validators {
  size: number;
  contentType: string;
  cacheControl: string;
  /**
   * Bytes in memory, or a file open for reading (read by position, so any
   * number of responses share one descriptor); it must stay open until
   * sendEntity has returned.
   */
  body: { bytes: Buffer } | { fd: number };
}

export const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/** Cached copies must be revalidated (a cheap 304) before each use. */
export const CACHE_REVALIDATE = 'no-cache';

/**
 * Read size for file bodies: 1 MiB reads instead of stream's 64 KiB serve a
 * 294 MiB bundle about twice as fast on loopback (`npm run bench`, scenario
 * 6); at most two such buffers per response in flight (one written, one read
 * ahead).
 */
const READ_CHUNK = 1 << 20;

/**
 * Read buffers in power-of-two sizes from 64 KiB to READ_CHUNK, reused once
 * the socket has taken their bytes: a buffer per response was most of the
 * garbage collector's work under many small ranges (external memory
 * pressure). At most POOLED_BYTES wait here; a buffer whose write never
 * completes (the client left) is simply not returned.
 */
const POOLED_BYTES = 8 << 20;
const pools = new Map<number, Buffer[]>();
let pooledBytes = 0;

function sizeClass(length: number): number {
  let size = 64 << 10;
  while (size < length) size *= 2;
  return size;
}

function takeBuffer(length: number): Buffer {
  const size = sizeClass(length);
  const buf = pools.get(size)?.pop();
  if (buf === undefined) return Buffer.allocUnsafeSlow(size);
  pooledBytes -= size;
  return buf;
}

function giveBack(buf: Buffer): void {
  if (pooledBytes + buf.length > POOLED_BYTES) return;
  let pool = pools.get(buf.length);
  if (pool === undefined) pools.set(buf.length, (pool = []));
  pool.push(buf);
  pooledBytes += buf.length;
}

interface Chunk {
  /** The pooled buffer, returned once the bytes are written. */
  buf: Buffer;
  bytes: Buffer;
}

function readAt(fd: number, length: number, position: number): Promise<Chunk> {
  return new Promise((resolve, reject) => {
    const buf = takeBuffer(length);
    read(fd, buf, 0, length, position, (err, n) => {
      if (err) {
        giveBack(buf);
        reject(err);
      } else resolve({ buf, bytes: buf.subarray(0, n) });
    });
  });
}

/** True once the response can take more; false when the client is gone. */
function drained(res: ServerResponse): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (more: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(more);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/** How a file body ended: whole, the client gone, or cut short on our side (a failed read, a file shorter than announced). */
type BodyEnd =
  | { kind: 'whole' }
  | { kind: 'client-gone' }
  | { kind: 'short'; at: number }
  | { kind: 'read-failed'; at: number; err: NodeJS.ErrnoException };

/**
 * Writes bytes `start`..`end` of the file and ends the response, unless
 * the file turned out shorter than announced (truncated in place under
 * us), a read failed, or the client went away: the caller then closes the
 * connection, the one way a client can tell a short body from a whole one.
 * The next chunk is read while the socket takes the current one; no read
 * is left running when this returns, so the caller may release the file.
 */
async function sendFileRange(res: ServerResponse, fd: number, start: number, end: number): Promise<BodyEnd> {
  const stop = end + 1;
  let pos = start;
  let pending: Promise<Chunk> | null = readAt(fd, Math.min(READ_CHUNK, stop - pos), pos);
  try {
    while (pending !== null) {
      let chunk: Chunk;
      try {
        chunk = await pending;
      } catch (err) {
        return { kind: 'read-failed', at: pos, err: err as NodeJS.ErrnoException };
      } finally {
        pending = null;
      }
      const { buf, bytes } = chunk;
      if (bytes.length === 0) {
        giveBack(buf);
        return { kind: 'short', at: pos };
      }
      pos += bytes.length;
      // called once the socket has taken the bytes (end's callback: once all of them are sent)
      const written = (err?: Error | null) => {
        if (!err) giveBack(buf);
      };
      if (pos >= stop) {
        res.end(bytes, written);
        return { kind: 'whole' };
      }
      pending = readAt(fd, Math.min(READ_CHUNK, stop - pos), pos);
      if (!res.write(bytes, written) && !(await drained(res))) return { kind: 'client-gone' };
    }
    return { kind: 'client-gone' };
  } finally {
    if (pending !== null)
      await pending.then(
        ({ buf }) => giveBack(buf),
        () => undefined,
      );
  }
}

/** Where a body this server could not send whole is reported: the server's log, and what the file is (its path in the tree). */
export interface BodyReport {
  log: (line: string) => void;
  what: string;
}

export async function sendEntity(
  req: IncomingMessage,
  res: ServerResponse,
  entity: Entity,
  report?: BodyReport,
): Promise<void> {
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
  if ('bytes' in entity.body) {
    res.end(entity.body.bytes.subarray(start, end + 1));
    return;
  }
  const ended = await sendFileRange(res, entity.body.fd, start, end);
  if (ended.kind === 'whole') return;
  // headers are gone, so the only honest signal left is a connection closed before Content-Length bytes
  res.destroy();
  // a client that leaves is ordinary (the access log marks it); a body cut on our side is the server's problem
  if (report && ended.kind !== 'client-gone') report.log(bodyProblem(report.what, ended, entity.size));
}

function bodyProblem(what: string, ended: Extract<BodyEnd, { at: number }>, size: number): string {
  const where = `${what}: response cut at byte ${ended.at} of ${size}, connection closed (the client can resume)`;
  if (ended.kind === 'short')
    return `${where}: the file is shorter than when it was opened; something rewrote it in place, while published files are only ever replaced by a rename: find what writes into the served tree`;
  const e = ended.err;
  return `${where}: read failed (${e.code ?? e.name}: ${e.message}); check the disk and the file's permissions under the served tree`;
}
