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

/** JavaScript enumerates keys like "12" before all others, whatever their order: leave those to the full path. */
const ARRAY_INDEX = /^(?:0|[1-9]\d*)$/;

/**
 * The text of `next`, from `text`, the text of `previous` as it was parsed:
 * entries of `next` that are the same objects as in `previous` keep their
 * text; the others are written anew. Null when this cannot be done safely.
 */
export function spliceManifestText(text: string, previous: Manifest, next: Manifest): string | null {
  if (!text.startsWith('{\n "') || !text.endsWith('\n}\n')) return null;
  const end = text.length - 2; // the closing brace, after the last entry's newline
  const touched: string[] = []; // in previous: changed or removed
  const added: string[] = [];
  for (const key of Object.keys(previous)) {
    if (!Object.hasOwn(next, key) || next[key] !== previous[key]) touched.push(key);
  }
  for (const key of Object.keys(next)) if (!Object.hasOwn(previous, key)) added.push(key);
  if (touched.length + added.length > MAX_SPLICED) return null;
  if (touched.length === 0 && added.length === 0) return text;
  if ([...touched, ...added].some((k) => ARRAY_INDEX.test(k))) return null;
  const order = Object.keys(previous); // the order of the text, when no key is an array index
  if (order.length > 0 && ARRAY_INDEX.test(order[0]!)) return null;

  /** Where something happens in the text: an entry replaced or dropped, or one inserted before `at`. */
  interface Edit {
    at: number;
    key: string;
    insert: boolean;
  }
  const edits: Edit[] = [];
  const startOf = (key: string): number => {
    const found = text.indexOf(`\n ${JSON.stringify(key)}: {`);
    return found < 0 ? -1 : found + 1;
  };
  for (const key of touched) {
    const at = startOf(key);
    if (at < 0) return null;
    edits.push({ at, key, insert: false });
  }
  for (const key of added) {
    const after = firstAbove(order, key);
    const at = after === null ? end : startOf(after);
    if (at < 0) return null;
    edits.push({ at, key, insert: true });
  }
  // inserts go before the entry they name, in key order; an entry is in the text once
  edits.sort((a, b) => a.at - b.at || Number(b.insert) - Number(a.insert) || (a.key < b.key ? -1 : 1));

  /** Runs of entries kept as they are, and entries written anew: the body is these joined by `,\n`. */
  const pieces: string[] = [];
  let cursor = 2; // the first entry
  const keep = (upTo: number) => {
    if (upTo <= cursor) return;
    // the kept run ends with the last entry before upTo, without its separator
    let run = text.slice(cursor, upTo - 1);
    if (run.endsWith(',')) run = run.slice(0, -1);
    pieces.push(run);
  };
  for (const edit of edits) {
    if (edit.at < cursor) return null; // two edits of one entry: not a layout we wrote
    keep(edit.at);
    cursor = edit.at;
    const entry = next[edit.key];
    if (entry !== undefined) {
      const written = entryText(edit.key, entry);
      if (written === null) return null;
      pieces.push(written);
    }
    if (!edit.insert) {
      const following = text.indexOf('\n "', edit.at);
      cursor = following < 0 ? end : following + 1;
    }
  }
  keep(end);
  return pieces.length ? `{\n${pieces.join(',\n')}\n}\n` : '{}\n';
}

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
