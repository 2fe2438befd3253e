/**
 * Bounds on what a published document may hold beyond the fields we read.
 * Manifest entries keep unknown keys (grokmirror's format allows extras and
 * we write them back to the local manifest), so an origin could otherwise
 * put anything there: an array nested 200,000 deep parses (JSON.parse does
 * not recurse) but then overflows the stack of every JSON.stringify, the
 * local manifest's included, on every later run. Measured without
 * recursion, for the same reason.
 */

export interface JsonBounds {
  /** Deepest nesting of arrays and objects (the value itself is level 1). */
  maxDepth: number;
  /** About the length of the value as JSON. */
  maxBytes: number;
}

/** Why `value` is out of bounds, or null. */
export function jsonBoundsProblem(value: unknown, bounds: JsonBounds): string | null {
  const stack: [unknown, number][] = [[value, 1]];
  let bytes = 0;
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (Array.isArray(v) || (v !== null && typeof v === 'object')) {
      if (depth > bounds.maxDepth) return `is nested more than ${bounds.maxDepth} levels deep`;
      bytes += 2;
      if (Array.isArray(v)) {
        bytes += v.length;
        for (const x of v) stack.push([x, depth + 1]);
      } else {
        for (const [k, x] of Object.entries(v)) {
          bytes += k.length + 4;
          stack.push([x, depth + 1]);
        }
      }
    } else bytes += typeof v === 'string' ? v.length + 2 : String(v).length;
    if (bytes > bounds.maxBytes) return `holds more than ${bounds.maxBytes} bytes`;
  }
  return null;
}
