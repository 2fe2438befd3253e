/**
 * The publish time of a signed manifest, carried inside the signed bytes.
 *
 * The manifest's JSON is keyed by repository path, so an extra top-level
 * key would read as one more repository to grokmirror. The time goes in the
 * gzip header's comment field instead (RFC 1952 FCOMMENT): every gunzip,
 * Python's gzip module (grokmirror) and zlib skip it, and it is covered by
 * `manifest.js.gz.sig` like the rest of the file, so a host in between can
 * neither change it nor replay an older manifest under a newer time. The
 * comment reads `bundlemirror-published=<ISO 8601 time>`.
 */
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const PREFIX = 'bundlemirror-published=';

/** Adds the stamp to gzip bytes written by serializeManifest (a bare 10-byte header). */
export function stampManifest(gzip: Buffer, published: Date): Buffer {
  const plain = unstampManifest(gzip);
  const header = Buffer.from(plain.subarray(0, 10));
  header[3] = header[3]! | FCOMMENT;
  const comment = Buffer.from(`${PREFIX}${published.toISOString()}\0`, 'latin1');
  return Buffer.concat([header, comment, plain.subarray(10)]);
}

/** The publish time a manifest carries (ISO), or null when it has none. */
export function manifestStamp(bytes: Buffer): string | null {
  const comment = headerComment(bytes);
  if (!comment?.text.startsWith(PREFIX)) return null;
  const iso = comment.text.slice(PREFIX.length);
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(iso) && Number.isFinite(Date.parse(iso)) ? iso : null;
}

/** The same gzip bytes without a comment (what serializeManifest wrote), for comparing content. */
export function unstampManifest(bytes: Buffer): Buffer {
  const comment = headerComment(bytes);
  if (!comment) return bytes;
  const header = Buffer.from(bytes.subarray(0, comment.start));
  header[3] = header[3]! & ~FCOMMENT;
  return Buffer.concat([header, bytes.subarray(comment.end)]);
}

function headerComment(bytes: Buffer): { text: string; start: number; end: number } | null {
  if (bytes.length < 10 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return null;
  const flags = bytes[3]!;
  if (!(flags & FCOMMENT)) return null;
  let at = 10;
  if (flags & FEXTRA) {
    if (at + 2 > bytes.length) return null;
    at += 2 + bytes.readUInt16LE(at);
  }
  if (flags & FNAME) {
    const end = bytes.indexOf(0, at);
    if (end < 0) return null;
    at = end + 1;
  }
  const end = bytes.indexOf(0, at);
  if (end < 0 || end - at > 4096) return null;
  return { text: bytes.subarray(at, end).toString('latin1'), start: at, end: end + 1 };
}
