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

/** The characters that matter outside strings; everything else (numbers, literals, whitespace) is skipped in one jump. */
const STRUCTURE = /[{}[\],"]/g;

/**
 * `parsed`, what JSON.parse made of `text`, allows a quick answer for the
 * usual document, which has no duplicate: see noDuplicatePossible.
 */
export function duplicateKeys(text: string, limit = 100, parsed?: unknown): DuplicateKey[] {
  if (parsed !== undefined && noDuplicatePossible(text, parsed)) return [];
  const found: DuplicateKey[] = [];
  const stack: Frame[] = [];
  const n = text.length;
  const structure = new RegExp(STRUCTURE.source, 'g');
  let i = 0;
  while (i < n && found.length < limit) {
    structure.lastIndex = i;
    const m = structure.exec(text);
    if (!m) break;
    i = m.index;
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ object: c === 0x7b, keys: new Set(), current: null, expectKey: c === 0x7b });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.object) top.expectKey = true;
    } else {
      // a string: its end is the next quote not escaped by an odd run of backslashes
      let j = text.indexOf('"', i + 1);
      while (j !== -1) {
        let k = j - 1;
        while (text.charCodeAt(k) === 0x5c /* \ */) k -= 1;
        if ((j - 1 - k) % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (j === -1) j = n;
      const top = stack[stack.length - 1];
      if (top?.object && top.expectKey) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
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
    i += 1;
  }
  return found;
}

/**
 * True when the text has as many keys as JSON.parse kept, so none was
 * there twice (a 10,000-entry manifest in a few milliseconds instead of a
 * scan of every key). Counted in the text: every quote not escaped by an
 * odd run of backslashes that is followed by optional whitespace and a
 * colon. Every key's closing quote is such a quote; so is an opening quote
 * of a string that starts with a colon, which can only make the count too
 * high. Each duplicate makes the parsed count one lower, so equal counts
 * prove that there is none; anything else goes to the full scan.
 */
function noDuplicatePossible(text: string, parsed: unknown): boolean {
  let counted = 0;
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) {
    let j = i + 1;
    let c = text.charCodeAt(j);
    while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) c = text.charCodeAt(++j);
    if (c !== 0x3a /* : */) continue;
    let k = i - 1;
    while (text.charCodeAt(k) === 0x5c /* \ */) k -= 1;
    if ((i - 1 - k) % 2 === 0) counted += 1;
  }
  // own keys of every object in the parsed document (JSON.parse makes "__proto__" an own key too)
  let kept = 0;
  const stack: unknown[] = [parsed];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) if (typeof x === 'object' && x !== null) stack.push(x);
      continue;
    }
    for (const key in v) {
      kept += 1;
      const x = (v as Record<string, unknown>)[key];
      if (typeof x === 'object' && x !== null) stack.push(x);
    }
  }
  return counted === kept;
}
