/**
 * A static file server for tests, on 127.0.0.1 with an ephemeral port, that
 * gets HTTP ranges right by default (strong ETags, If-Range, 206/416 with
 * Content-Range) and can be told to get them wrong, one path at a time:
 *
 *   const origin = await startFlakyOrigin();
 *   origin.setFile('/a.bundle', bytes);                  // ETag "<sha256>"
 *   origin.behave('/a.bundle', { failures: { count: 2, status: 503 } });
 *   await downloadFile({ url: origin.url('/a.bundle'), ... });
 *   origin.stats('/a.bundle');  // { requests, bytesSent, statuses, ... }
 *   await origin.close();
 *
 * Misbehaviours with a `count` are used up one request at a time, in this
 * order: resets before headers, failure statuses, stalls. The others apply
 * to every request until changed with behave() (which merges) or reset with
 * behave(path, {}, { replace: true }).
 *
 * Everything is counted per path: requests (with the Range and If-Range they
 * carried and the status they got) and body bytes written to the socket.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * How the ETag looks: `sha256` is what bundlemirror's own `serve` sends
 * (`"<sha256>"`); `nginx` a server-chosen strong tag (`"<mtime>-<size>"`);
 * `weak` an express.static-style weak tag; `none` no ETag at all (only
 * Last-Modified).
 */
export type EtagStyle = 'sha256' | 'nginx' | 'weak' | 'none';

export interface Behaviour {
  /** Answer every Range request with 200 and the whole file. */
  ignoreRange?: boolean;
  /** Serve the range even when If-Range does not match (a server that splices versions). */
  ignoreIfRange?: boolean;
  /** On 206, lie in Content-Range: shift the start by one, report a wrong total, or send garbage. */
  wrongContentRange?: 'start' | 'total' | 'garbage';
  /** The next `count` requests get `status` (and Retry-After when given) instead of the file. */
  failures?: { count: number; status: number; retryAfter?: string };
  /** The next `count` requests get their headers and `afterBytes` body bytes (default 0), then nothing, ever. */
  stalls?: { count: number; afterBytes?: number };
  /** The next N requests see their connection reset before any header is sent. */
  resetsBeforeHeaders?: number;
  /** Every response's connection is destroyed after this many body bytes. */
  cutAfterBytes?: number;
  /**
   * Once this path has sent `bytes` body bytes in total, its content becomes
   * `body` (a new version: new ETag and Last-Modified) and the connection
   * that crossed the line is cut there.
   */
  replaceAfter?: { bytes: number; body: Buffer };
  /** Append these bytes to every body; with `chunked`, send no Content-Length so the client cannot tell in advance. */
  extraBytes?: { bytes: Buffer; chunked?: boolean };
  /** Body chunk size (default 64 KiB) and a pause between chunks, to make transfers slow enough to interrupt. */
  chunkBytes?: number;
  chunkDelayMs?: number;
}

export interface RequestRecord {
  path: string;
  method: string;
  range: string | undefined;
  ifRange: string | undefined;
  ifNoneMatch: string | undefined;
  ifModifiedSince: string | undefined;
  status: number | 'reset';
  /** Body bytes handed to the socket for this request (a client that hangs up may not have read them all). */
  bytesSent: number;
}

export interface PathStats {
  requests: number;
  bytesSent: number;
  statuses: (number | 'reset')[];
  rangeRequests: number;
}

interface FileEntry {
  source: Buffer | { diskPath: string };
  size: number;
  sha256: string;
  version: number;
  etagStyle: EtagStyle;
  lastModified: Date;
  sentTotal: number;
}

export interface FileOptions {
  etagStyle?: EtagStyle;
  /** Default: one hour ago (old enough to be a strong validator). */
  lastModified?: Date;
}

export interface FlakyOrigin {
  readonly port: number;
  readonly host: string;
  url(path: string): string;
  /** Serves `body` at `path` (replacing any previous content: a new version). */
  setFile(path: string, body: Buffer, opts?: FileOptions): void;
  /** Serves a file from disk at `path` (read on each request, ranges streamed). */
  setFileFromDisk(path: string, diskPath: string, opts?: FileOptions): Promise<void>;
  removeFile(path: string): void;
  /** Merges `b` into the path's behaviour (or replaces it with `{replace: true}`). */
  behave(path: string, b: Behaviour, opts?: { replace?: boolean }): void;
  /** The ETag currently served for `path` (undefined for style `none`). */
  etag(path: string): string | undefined;
  stats(path: string): PathStats;
  readonly requests: readonly RequestRecord[];
  close(): Promise<void>;
}

export async function startFlakyOrigin(): Promise<FlakyOrigin> {
  const files = new Map<string, FileEntry>();
  const behaviours = new Map<string, Behaviour>();
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();
  const pendingTimers = new Set<NodeJS.Timeout>();

  const etagOf = (f: FileEntry): string | undefined => {
    switch (f.etagStyle) {
      case 'sha256':
        return `"${f.sha256}"`;
      case 'nginx':
        return `"${Math.floor(f.lastModified.getTime() / 1000).toString(16)}-${f.size.toString(16)}"`;
      case 'weak':
        return `W/"${f.size.toString(16)}-${f.version}"`;
      case 'none':
        return undefined;
    }
  };

  const newEntry = (
    source: FileEntry['source'],
    size: number,
    sha256: string,
    opts: FileOptions | undefined,
    previous: FileEntry | undefined,
  ): FileEntry => {
    const version = (previous?.version ?? 0) + 1;
    // Each version gets a distinct Last-Modified (and so a distinct nginx-style ETag).
    const lastModified =
      opts?.lastModified ?? new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000 + version * 1000);
    return {
      source,
      size,
      sha256,
      version,
      etagStyle: opts?.etagStyle ?? previous?.etagStyle ?? 'sha256',
      lastModified,
      sentTotal: previous?.sentTotal ?? 0,
    };
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      res.destroy();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const record: RequestRecord = {
      path,
      method: req.method ?? 'GET',
      range: header(req, 'range'),
      ifRange: header(req, 'if-range'),
      ifNoneMatch: header(req, 'if-none-match'),
      ifModifiedSince: header(req, 'if-modified-since'),
      status: 0,
      bytesSent: 0,
    };
    requests.push(record);
    const b = behaviours.get(path) ?? {};

    if (b.resetsBeforeHeaders && b.resetsBeforeHeaders > 0) {
      b.resetsBeforeHeaders -= 1;
      record.status = 'reset';
      req.socket.resetAndDestroy();
      return;
    }
    if (b.failures && b.failures.count > 0) {
      b.failures.count -= 1;
      record.status = b.failures.status;
      const h: Record<string, string> = { 'content-type': 'text/plain' };
      if (b.failures.retryAfter !== undefined) h['retry-after'] = b.failures.retryAfter;
      res.writeHead(b.failures.status, h);
      res.end(`injected ${b.failures.status}\n`);
      return;
    }
    const file = files.get(path);
    if (!file) {
      record.status = 404;
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      record.status = 405;
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }

    const etag = etagOf(file);
    const lastModified = file.lastModified.toUTCString();
    const common: Record<string, string> = {
      'accept-ranges': 'bytes',
      'last-modified': lastModified,
      'content-type': 'application/octet-stream',
    };
    if (etag) common['etag'] = etag;

    if (
      record.ifNoneMatch !== undefined &&
      etag !== undefined &&
      record.ifNoneMatch
        .split(',')
        .map((s) => s.trim())
        .includes(etag)
    ) {
      record.status = 304;
      res.writeHead(304, common);
      res.end();
      return;
    }
    if (
      record.ifNoneMatch === undefined &&
      record.ifModifiedSince !== undefined &&
      Date.parse(record.ifModifiedSince) >= file.lastModified.getTime()
    ) {
      record.status = 304;
      res.writeHead(304, common);
      res.end();
      return;
    }

    let range = b.ignoreRange ? undefined : parseRange(record.range, file.size);
    if (
      range &&
      record.ifRange !== undefined &&
      !b.ignoreIfRange &&
      !ifRangeMatches(record.ifRange, etag, lastModified)
    )
      range = undefined;

    if (range === 'unsatisfiable') {
      record.status = 416;
      res.writeHead(416, { ...common, 'content-range': `bytes */${file.size}` });
      res.end();
      return;
    }
    const start = range ? range.start : 0;
    const end = range ? range.end : file.size - 1;
    const extra = b.extraBytes?.bytes ?? Buffer.alloc(0);
    const length = end - start + 1 + extra.length;
    const h: Record<string, string> = { ...common };
    if (!b.extraBytes?.chunked) h['content-length'] = String(length);
    if (range) {
      let cr = `bytes ${start}-${end}/${file.size}`;
      if (b.wrongContentRange === 'start') cr = `bytes ${start + 1}-${end}/${file.size}`;
      if (b.wrongContentRange === 'total') cr = `bytes ${start}-${end}/${file.size + 1}`;
      if (b.wrongContentRange === 'garbage') cr = 'bytes nonsense';
      h['content-range'] = cr;
    }
    record.status = range ? 206 : 200;

    let stallAt: number | undefined;
    if (b.stalls && b.stalls.count > 0) {
      b.stalls.count -= 1;
      stallAt = b.stalls.afterBytes ?? 0;
    }
    res.writeHead(record.status, h);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.flushHeaders();
    await sendBody(res, file, start, end, extra, b, record, stallAt, path);
  }

  /** Writes the body with backpressure, applying cuts, stalls and replacements as it goes. */
  async function sendBody(
    res: ServerResponse,
    file: FileEntry,
    start: number,
    end: number,
    extra: Buffer,
    b: Behaviour,
    record: RequestRecord,
    stallAt: number | undefined,
    path: string,
  ): Promise<void> {
    const chunkBytes = b.chunkBytes ?? 64 * 1024;
    const source = file.source;
    const pieces: AsyncIterable<Buffer> | Iterable<Buffer> =
      'diskPath' in source
        ? concatStreams(createReadStream(source.diskPath, { start, end, highWaterMark: chunkBytes }), extra)
        : sliceChunks(Buffer.concat([source.subarray(start, end + 1), extra]), chunkBytes);
    const cutAt = b.cutAfterBytes;
    for await (const piece of pieces) {
      if (res.destroyed) return; // the client went away
      let chunk = piece;
      let stop: 'cut' | 'stall' | 'replace' | undefined;
      const stallLeft = (stallAt ?? Infinity) - record.bytesSent;
      const cutLeft = (cutAt ?? Infinity) - record.bytesSent;
      if (chunk.length >= stallLeft && stallLeft <= cutLeft) {
        chunk = chunk.subarray(0, Math.max(stallLeft, 0));
        stop = 'stall';
      } else if (chunk.length >= cutLeft) {
        chunk = chunk.subarray(0, Math.max(cutLeft, 0));
        stop = 'cut';
      }
      const r = b.replaceAfter;
      if (r && file.sentTotal + chunk.length >= r.bytes && files.get(path) === file) {
        chunk = chunk.subarray(0, Math.max(r.bytes - file.sentTotal, 0));
        stop = 'replace';
      }
      if (chunk.length > 0) {
        record.bytesSent += chunk.length;
        file.sentTotal += chunk.length;
        const ok = res.write(chunk);
        if (!ok) await waitDrain(res);
      }
      if (stop === 'stall') return; // headers and some bytes sent; the socket stays open until close()
      if (stop === 'replace' && r) {
        b.replaceAfter = undefined;
        const sha = createHash('sha256').update(r.body).digest('hex');
        files.set(path, newEntry(r.body, r.body.length, sha, undefined, file));
      }
      if (stop === 'cut' || stop === 'replace') {
        await flushed(res);
        res.socket?.destroy();
        return;
      }
      if (b.chunkDelayMs) await delay(b.chunkDelayMs);
    }
    res.end();
  }

  function delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        pendingTimers.delete(t);
        resolve();
      }, ms);
      pendingTimers.add(t);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    host: '127.0.0.1',
    url: (p) => `http://127.0.0.1:${port}${p}`,
    setFile(path, body, opts) {
      const sha = createHash('sha256').update(body).digest('hex');
      files.set(path, newEntry(Buffer.from(body), body.length, sha, opts, files.get(path)));
    },
    async setFileFromDisk(path, diskPath, opts) {
      const st = await stat(diskPath);
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(diskPath)) hash.update(chunk as Buffer);
      files.set(path, newEntry({ diskPath }, st.size, hash.digest('hex'), opts, files.get(path)));
    },
    removeFile(path) {
      files.delete(path);
    },
    behave(path, b, opts) {
      const merged = opts?.replace ? { ...b } : { ...(behaviours.get(path) ?? {}), ...b };
      // Counters are consumed in place; copy them so the caller's object stays as written.
      if (merged.failures) merged.failures = { ...merged.failures };
      if (merged.stalls) merged.stalls = { ...merged.stalls };
      behaviours.set(path, merged);
    },
    etag(path) {
      const f = files.get(path);
      return f ? etagOf(f) : undefined;
    },
    stats(path) {
      const mine = requests.filter((r) => r.path === path);
      return {
        requests: mine.length,
        bytesSent: mine.reduce((n, r) => n + r.bytesSent, 0),
        statuses: mine.map((r) => r.status),
        rangeRequests: mine.filter((r) => r.range !== undefined).length,
      };
    },
    requests,
    async close() {
      for (const t of pendingTimers) clearTimeout(t);
      pendingTimers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; anything else (multiple ranges, other units) is ignored. */
function parseRange(
  value: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(size - n, 0), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return undefined;
  return { start, end };
}

/** RFC 9110 13.1.5: an entity tag matches only by strong comparison; a date only if identical to Last-Modified. */
function ifRangeMatches(ifRange: string, etag: string | undefined, lastModified: string): boolean {
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return etag !== undefined && !etag.startsWith('W/') && v === etag;
  return v === lastModified;
}

function* sliceChunks(buf: Buffer, size: number): Iterable<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(i + size, buf.length));
}

async function* concatStreams(stream: AsyncIterable<unknown>, extra: Buffer): AsyncIterable<Buffer> {
  for await (const chunk of stream) yield chunk as Buffer;
  if (extra.length > 0) yield extra;
}

function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/**
 * Resolves once everything written so far has left Node's buffers for the
 * kernel (or the socket is gone), so a cut that follows delivers exactly
 * the bytes counted. Polls: 'drain' only fires after a refused write.
 */
async function flushed(res: ServerResponse): Promise<void> {
  const socket = res.socket;
  for (let i = 0; i < 2000 && socket && !socket.destroyed && socket.writableLength > 0; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
