/**
 * Keys that appear twice in one JSON object. The JSON specification leaves
 * their meaning open: JSON.parse keeps the last, other parsers the first, so
 * a manifest or index.json with `"/pub/a.git"` (or `"refs/heads/main"`)
 * twice means one thing to us and another to a proxy, a cache or grokmirror.
 * Such documents come from a broken or hostile origin; callers refuse the
 * entries concerned rather than guess.
 *
 * A single pass over text that JSON.parse has already accepted, so it only
 * has to tell keys from values; it never builds the document.
 */

export interface DuplicateKey {
  /** Keys leading to the object that holds the duplicate (empty: the top-level object). */
  path: string[];
  key: string;
}

interface Frame {
  object: boolean;
  keys: Set<string>;
  /** The key whose value is being read (objects only). */
  current: string | null;
  expectKey: boolean;
}

export function duplicateKeys(text: string, limit = 100): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  const stack: Frame[] = [];
  const n = text.length;
  for (let i = 0; i < n && found.length < limit; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ object: c === 0x7b, keys: new Set(), current: null, expectKey: c === 0x7b });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.object) top.expectKey = true;
    } else if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) j += 2;
        else if (d === 0x22) break;
        else j += 1;
      }
      const top = stack[stack.length - 1];
      if (top?.object && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key))
          found.push({
            path: stack
              .slice(0, -1)
              .map((f) => f.current ?? '')
              .filter((_, k) => stack[k]!.object),
            key,
          });
        top.keys.add(key);
        top.current = key;
        top.expectKey = false;
      }
      i = j;
    }
  }
  return found;
}
