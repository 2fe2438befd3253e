/**
 * The manifest's text after a few entries changed, written by replacing
 * those entries in the text the last write produced instead of serialising
 * every entry again: a hook publish among 10,000 repositories changes one
 * entry, and serialising the other 9,999 cost more than the rest of its
 * manifest write. The result is the text `manifestText` would give, byte
 * for byte (test/manifest-splice.test.ts), so a hook publish and a full
 * publish still write identical files.
 *
 * The layout this relies on is the one `manifestText` writes: `{\n`, the
 * entries sorted by key and joined by `,\n`, each ` "KEY": {` at indent 1
 * with its members deeper, then `\n}\n`. JSON never carries a raw newline
 * inside a string, so a line that starts with one space and a quote is an
 * entry's first line and nothing else. Whatever does not fit returns null,
 * and the caller serialises the whole manifest.
 */
import { entryText, type Manifest } from './manifest.js';

/** Beyond this many changed entries, searching the text for each costs more than writing it all. */
const MAX_SPLICED = 64;

/** JavaScript enumerates keys like "12" before all others, whatever their order: those go the full path. */
const ARRAY_INDEX = /^(?:0|[1-9]\d*)$/;

/**
 * The JSON of `next`, as UTF-8 bytes, from `json`, those of `previous` as it
 * was parsed, where `next` is a copy of `previous` with the entries named by
 * `keys` put in, replaced or deleted; the other entries keep their bytes.
 * Null when this cannot be done safely.
 */
export function spliceManifest(
  json: Buffer,
  previous: Manifest,
  next: Manifest,
  keys: Iterable<string>,
): Buffer | null {
  if (!startsWith(json, '{\n "') || !endsWith(json, '\n}\n')) return null;
  // a first key JavaScript would enumerate out of order ("12"): the full path decides
  if (json[4]! >= 0x30 && json[4]! <= 0x39) return null;
  const end = json.length - 2; // the closing brace, after the last entry's newline
  const touched: string[] = []; // in previous: replaced or deleted
  const added: string[] = [];
  for (const key of new Set(keys)) {
    if (Object.hasOwn(previous, key)) touched.push(key);
    else if (Object.hasOwn(next, key)) added.push(key);
  }
  if (touched.length + added.length > MAX_SPLICED) return null;
  if (touched.length === 0 && added.length === 0) return json;
  if ([...touched, ...added].some((k) => ARRAY_INDEX.test(k))) return null;

  /** Where something happens in the text: an entry replaced or dropped, or one inserted before `at`. */
  interface Edit {
    at: number;
    key: string;
    insert: boolean;
  }
  const edits: Edit[] = [];
  const startOf = (key: string): number => {
    const found = json.indexOf(`\n ${JSON.stringify(key)}: {`, 0, 'utf8');
    return found < 0 ? -1 : found + 1;
  };
  for (const key of touched) {
    const at = startOf(key);
    if (at < 0) return null;
    edits.push({ at, key, insert: false });
  }
  // the text's order is the sorted keys': an entry goes before the first key above it
  const order = added.length ? Object.keys(previous) : [];
  for (const key of added) {
    const after = firstAbove(order, key);
    const at = after === null ? end : startOf(after);
    if (at < 0) return null;
    edits.push({ at, key, insert: true });
  }
  // inserts go before the entry they name, in key order; an entry is in the text once
  edits.sort((a, b) => a.at - b.at || Number(b.insert) - Number(a.insert) || (a.key < b.key ? -1 : 1));

  /** Runs of entries kept as they are, and entries written anew: the body is these joined by `,\n`. */
  const pieces: Buffer[] = [];
  let cursor = 2; // the first entry
  const keep = (upTo: number) => {
    if (upTo <= cursor) return;
    // the kept run ends with the last entry before upTo, without its separator
    const last = json[upTo - 2] === COMMA ? upTo - 2 : upTo - 1;
    pieces.push(json.subarray(cursor, last));
  };
  for (const edit of edits) {
    if (edit.at < cursor) return null; // two edits of one entry: not a layout we wrote
    keep(edit.at);
    cursor = edit.at;
    const entry = next[edit.key];
    if (entry !== undefined && Object.hasOwn(next, edit.key)) {
      const written = entryText(edit.key, entry);
      if (written === null) return null;
      pieces.push(Buffer.from(written, 'utf8'));
    }
    if (!edit.insert) {
      const following = json.indexOf('\n "', edit.at);
      cursor = following < 0 ? end : following + 1;
    }
  }
  keep(end);
  if (!pieces.length) return Buffer.from('{}\n');
  const parts: Buffer[] = [OPEN];
  for (const [i, piece] of pieces.entries()) parts.push(...(i ? [SEPARATOR, piece] : [piece]));
  parts.push(CLOSE);
  return Buffer.concat(parts);
}

const COMMA = 0x2c;
const OPEN = Buffer.from('{\n');
const SEPARATOR = Buffer.from(',\n');
const CLOSE = Buffer.from('\n}\n');
const startsWith = (b: Buffer, s: string) => b.subarray(0, s.length).toString('latin1') === s;
const endsWith = (b: Buffer, s: string) =>
  b.length >= s.length && b.subarray(b.length - s.length).toString('latin1') === s;

/** The first key of the sorted `keys` above `key`, or null. */
function firstAbove(keys: string[], key: string): string | null {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo < keys.length ? keys[lo]! : null;
}
