/**
 * One line per request: time, client, method, path, status, body bytes,
 * milliseconds. Written when the response finishes, or when the client
 * hangs up first (marked `aborted`, which is how a broken download looks
 * from the server).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export type LogLine = (line: string) => void;

/** Request targets are client input: keep the log one line per request, printable. */
export function printable(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function byteCount(chunk: unknown, encoding?: unknown): number {
  if (typeof chunk === 'string')
    return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}

export function logRequests(write: LogLine) {
  return function accessLog(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    const target = req.url ?? '';
    // read now: once the client has hung up the socket no longer knows its peer
    const who = req.socket.remoteAddress ?? '-';
    let bytes = 0;
    // count body bytes as they are written; the socket's count would include headers and other requests
    const write0 = res.write;
    const end0 = res.end;
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      bytes += byteCount(chunk, rest[0]);
      return (write0 as (...args: unknown[]) => boolean).apply(this, [chunk, ...rest]);
    } as typeof res.write;
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== 'function') bytes += byteCount(chunk, rest[0]);
      return (end0 as (...args: unknown[]) => ServerResponse).apply(this, [chunk, ...rest]);
    } as typeof res.end;

    let logged = false;
    const done = (aborted: boolean) => {
      if (logged) return;
      logged = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      write(
        `${new Date().toISOString()} ${who} ${printable(req.method ?? '-')} ${printable(target)} ${res.statusCode} ${bytes}B ${ms.toFixed(1)}ms${aborted ? ' aborted' : ''}`,
      );
    };
    res.on('finish', () => done(false));
    res.on('close', () => done(!res.writableFinished));
  };
}
