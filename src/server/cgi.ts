/**
 * Reads a CGI response (RFC 3875 §6): header lines, a blank line, then the
 * body. `Status:` becomes the HTTP status; hop-by-hop headers are dropped
 * because Node owns the connection framing.
 */
import type { Readable } from 'node:stream';

export interface CgiHead {
  status: number;
  headers: [string, string][];
  /** Body bytes that arrived in the same chunks as the header. */
  rest: Buffer;
}

const MAX_HEAD = 64 << 10;
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'te',
  'trailer',
]);

export class CgiError extends Error {}

export function parseCgiHead(head: string): { status: number; headers: [string, string][] } {
  let status = 200;
  const headers: [string, string][] = [];
  for (const line of head.split(/\r?\n/)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new CgiError(`malformed CGI header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const code = Number(/^(\d{3})\b/.exec(value)?.[1]);
      if (!(code >= 100 && code <= 599))
        throw new CgiError(`malformed CGI Status ${JSON.stringify(value.slice(0, 80))}`);
      status = code;
    } else if (!HOP_BY_HOP.has(lower)) {
      headers.push([name, value]);
    }
  }
  return { status, headers };
}

/** Resolves once the blank line after the headers has been read; rejects if the program ends first. */
export function readCgiHead(stdout: Readable): Promise<CgiHead> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      stdout.off('data', onData);
      stdout.off('end', onEnd);
      stdout.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const crlf = buf.indexOf('\r\n\r\n');
      const lf = buf.indexOf('\n\n');
      const candidates = [crlf < 0 ? null : { at: crlf, len: 4 }, lf < 0 ? null : { at: lf, len: 2 }].filter(
        (c) => c !== null,
      );
      const end = candidates.sort((a, b) => a.at - b.at)[0];
      if (end) {
        cleanup();
        stdout.pause();
        try {
          const { status, headers } = parseCgiHead(buf.subarray(0, end.at).toString('latin1'));
          resolve({ status, headers, rest: buf.subarray(end.at + end.len) });
        } catch (err) {
          reject(err);
        }
      } else if (buf.length > MAX_HEAD) {
        cleanup();
        reject(new CgiError('CGI header longer than 64 KiB'));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new CgiError('CGI program ended before its header was complete'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stdout.on('data', onData);
    stdout.on('end', onEnd);
    stdout.on('error', onError);
  });
}
