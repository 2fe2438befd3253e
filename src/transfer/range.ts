/**
 * The pieces of HTTP range semantics a resume depends on: reading
 * Content-Range, and choosing the If-Range validator that makes a server
 * send the whole new file (200) instead of the tail of a different version
 * (RFC 9110 13.1.5, 14.4).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { headerValue } from './http.js';

export type ContentRange =
  { kind: 'bytes'; start: number; end: number; total: number | undefined } | { kind: 'unsatisfied'; total: number };

/** `bytes 100-199/1000`, `bytes 100-199/*`, or `bytes *\/1000`; undefined when malformed. */
export function parseContentRange(value: string | undefined): ContentRange | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*bytes\s+(?:(\d+)-(\d+)|(\*))\/(\d+|\*)\s*$/i.exec(value);
  if (!m) return undefined;
  const total = m[4] === '*' ? undefined : Number(m[4]);
  if (m[3] === '*') return total === undefined ? undefined : { kind: 'unsatisfied', total };
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined;
  if (total !== undefined && end >= total) return undefined;
  return { kind: 'bytes', start, end, total };
}

export function isStrongEtag(etag: string | undefined): etag is string {
  return etag !== undefined && /^"[^"]*"$/.test(etag.trim());
}

/**
 * The validator to send in If-Range on later attempts, from the response
 * that started the partial file. A strong ETag if the server sent one;
 * otherwise Last-Modified, but only when it is strong in RFC 9110's sense
 * (at least 60 s older than the response's Date), because a date that can
 * cover two writes within one second cannot prove the bytes unchanged.
 */
export function validatorFromResponse(headers: IncomingHttpHeaders): string | undefined {
  const etag = headerValue(headers, 'etag');
  if (isStrongEtag(etag)) return etag.trim();
  if (etag !== undefined) return undefined; // a weak ETag: the server has no strong validator for us
  const lastModified = headerValue(headers, 'last-modified');
  const date = headerValue(headers, 'date');
  if (lastModified === undefined || date === undefined) return undefined;
  const lm = Date.parse(lastModified);
  const d = Date.parse(date);
  if (Number.isNaN(lm) || Number.isNaN(d) || d - lm < 60_000) return undefined;
  return lastModified.trim();
}

/**
 * True when a 206 carries a strong ETag other than the one we asked for in
 * If-Range: the server ignored If-Range and the tail may belong to another
 * version of the file.
 */
export function contradictsValidator(headers: IncomingHttpHeaders, sentValidator: string): boolean {
  const etag = headerValue(headers, 'etag');
  if (!isStrongEtag(etag) || !sentValidator.startsWith('"')) return false;
  return etag.trim() !== sentValidator;
}
