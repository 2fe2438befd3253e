/**
 * The `Range` request header (RFC 9110 §14), reduced to the one decision a
 * resuming client needs: the whole file, one slice of it, or 416.
 *
 * Multiple ranges are answered with the whole file (200): the server may
 * ignore Range, our clients never ask for more than one, and a
 * multipart/byteranges body is one more thing to get wrong. Syntactically
 * invalid headers and unknown units are ignored the same way, as the RFC
 * allows, so a malformed header can never produce an error status.
 */

export type RangeDecision =
  | { kind: 'full' }
  /** Inclusive byte positions, both within the file. */
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/** Longer headers are ignored rather than parsed (nobody resumes with a kilobyte of ranges). */
const MAX_HEADER = 1024;

const FULL: RangeDecision = { kind: 'full' };
const UNSATISFIABLE: RangeDecision = { kind: 'unsatisfiable' };

export function parseRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined || header.length > MAX_HEADER) return FULL;
  const m = /^\s*bytes\s*=(.*)$/i.exec(header);
  if (!m) return FULL;
  // empty list elements (`bytes=0-1,`) are allowed by the list syntax and mean nothing
  const specs = m[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length !== 1) return FULL;
  const spec = specs[0]!;

  const suffix = /^-(\d+)$/.exec(spec);
  if (suffix) {
    const length = Number(suffix[1]);
    if (length === 0 || size === 0) return UNSATISFIABLE;
    return { kind: 'partial', start: Math.max(0, size - length), end: size - 1 };
  }

  const bounded = /^(\d+)-(\d*)$/.exec(spec);
  if (!bounded) return FULL;
  const start = Number(bounded[1]);
  const last = bounded[2] === '' ? Infinity : Number(bounded[2]);
  if (last < start) return FULL; // invalid, not unsatisfiable
  if (start >= size) return UNSATISFIABLE;
  return { kind: 'partial', start, end: Math.min(last, size - 1) };
}
