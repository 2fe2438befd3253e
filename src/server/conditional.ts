/**
 * Validators and conditional requests (RFC 9110 §8.8, §13).
 *
 * Every ETag we send is strong: a resuming client sends it back in
 * If-Range, and only a strong validator can prove that the bytes it already
 * has and the bytes we are about to send come from the same file.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { BigIntStats } from 'node:fs';

export interface Validators {
  /** A strong entity tag including its quotes: `"..."`. */
  etag: string;
  lastModified: Date;
}

/**
 * Strong ETag for a file that is replaced by atomic rename (index.json,
 * bundle-list, the manifest): every rename brings a new inode, and the
 * nanosecond mtime and size change with any rewrite in place.
 */
export function statEtag(st: BigIntStats): string {
  return `"${st.ino.toString(16)}-${st.size.toString(16)}-${st.mtimeNs.toString(16)}"`;
}

/** Opaque tags of an If-None-Match list; `*` is returned as itself. */
function entityTags(header: string): string[] {
  if (header.trim() === '*') return ['*'];
  return header.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** Whole seconds: HTTP dates have no finer resolution, so comparisons must not use any. */
function seconds(d: Date): number {
  return Math.floor(d.getTime() / 1000);
}

/**
 * True when a GET or HEAD can be answered 304. If-None-Match (weak
 * comparison) wins over If-Modified-Since, which is ignored when invalid or
 * later than now.
 */
export function isNotModified(headers: IncomingHttpHeaders, v: Validators): boolean {
  const inm = headers['if-none-match'];
  if (inm !== undefined) {
    const tags = entityTags(inm);
    return tags.includes('*') || tags.some((t) => opaque(t) === opaque(v.etag));
  }
  const ims = headers['if-modified-since'];
  if (ims !== undefined) {
    const since = Date.parse(ims);
    if (Number.isNaN(since)) return false;
    // a date in the future proves nothing about the file (a client with a wrong clock, or one that
    // wants a 304 for whatever comes next): as RFC 9110 §13.1.3 says, it is treated as absent
    if (Math.floor(since / 1000) > Math.floor(Date.now() / 1000)) return false;
    return seconds(v.lastModified) <= Math.floor(since / 1000);
  }
  return false;
}

/**
 * If-Range (RFC 9110 §13.1.5): the Range applies only when the client's
 * validator matches. Only a strong ETag can match. A date is treated as a
 * mismatch (the whole file is sent): a one-second date cannot prove that a
 * file rewritten within the same second is the one the client has.
 */
export function ifRangeMatches(header: string | undefined, v: Validators): boolean {
  if (header === undefined) return true;
  const value = header.trim();
  if (!value.startsWith('"')) return false;
  return value === v.etag;
}
