/**
 * A changed manifest read as an edit of the one the replica settled last.
 *
 * A push to one repository of 10,000 changes one entry of the manifest,
 * yet reading it in full costs every entry its checks, which a cron'd poll
 * pays on every change. When the replica holds the bytes of the previous
 * manifest, and acted on all of it (no problems, every entry plain: see
 * ParsedManifest.plain), the new text is compared with the old: what lies
 * before the first and after the last differing byte is the old text, and
 * the entries it holds are the old entries, already checked. Only the
 * entries between are checked, and reported as changed (or removed).
 *
 * Nothing here trusts a guess about the layout. The cut before the change
 * is proved to end a whole top-level entry by parsing the text before it
 * closed with `}`; the cut after by parsing the text after it opened with
 * `{`; the part between by parsing it as an object of its own. JSON's
 * grammar then makes the three the whole manifest, entry for entry. A key
 * in two parts is caught by counting: anything that does not fit returns
 * null, and the caller reads the manifest in full (which also says what is
 * wrong with it). test/manifest-edit.test.ts holds the two readings together.
 */
import { acceptEntries, unpackManifest, type Manifest, type ParsedManifest } from './manifest.js';

/** A manifest read as an edit: the entries that differ from the settled manifest's. */
export interface ManifestEdit extends ParsedManifest {
  /** Entries whose text changed or that are new (refused ones included; they are in `problems`). */
  changed: Set<string>;
  /** Entries of the settled manifest that this one no longer has. */
  removed: string[];
  /** How many entries `manifest` holds. */
  size: number;
}

const COMMA = 0x2c;
const QUOTE = 0x22;
const OPEN = 0x7b;
const CLOSE = 0x7d;
/** Attempts at each cut before giving up (a compact manifest has the separator inside entries too). */
const TRIES = 3;

const isJsonSpace = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Reads `bytes` as an edit of `settled`, the bytes of a manifest this
 * replica parsed with `plain` true and fully acted on. Null when the edit
 * cannot be proved to leave the rest of the text whole: then parse in full.
 */
export function parseManifestEdit(bytes: Buffer, settled: Buffer, source = 'manifest'): ManifestEdit | null {
  const next = unpackManifest(bytes, source);
  const prev = unpackManifest(settled, `${source} (settled copy)`);
  // the separator between top-level entries, as the settled text writes it: a comma, the indentation, a quote
  let open = 0;
  while (isJsonSpace(prev[open])) open += 1;
  if (prev[open] !== OPEN) return null;
  let first = open + 1;
  while (isJsonSpace(prev[first])) first += 1;
  if (prev[first] !== QUOTE) return null;
  const sep = Buffer.concat([Buffer.of(COMMA), prev.subarray(open + 1, first), Buffer.of(QUOTE)]);

  const same = commonPrefix(next, prev);
  if (same <= open) return null;
  if (same === next.length && same === prev.length) {
    // the same text (a signed manifest's new stamp is outside it): the settled entries, unchanged
    const all = parseObject(next.toString('utf8'));
    return (
      all && {
        manifest: all as Manifest,
        problems: [],
        plain: true,
        changed: new Set(),
        removed: [],
        size: Object.keys(all).length,
      }
    );
  }
  const tail = commonSuffix(next, prev, Math.min(next.length, prev.length) - same);
  const shift = next.length - prev.length;

  // the cut before the change: a separator at or before the first differing byte, or just after the opening brace
  let before: Record<string, unknown> | null = null;
  let a = -1;
  let aIsComma = true;
  for (let from = same - 1, tries = 0; tries < TRIES; tries += 1) {
    a = from > open ? next.lastIndexOf(sep, from) : -1;
    if (a <= open) {
      [a, aIsComma, before] = [open + 1, false, {}];
      break;
    }
    before = parseObject(next.toString('utf8', 0, a) + '}');
    if (before) break;
    from = a - 1;
  }
  if (!before) return null;

  // the cut after it: a separator in the common tail, or the closing brace
  let after: Record<string, unknown> | null = null;
  let b = -1;
  let bIsComma = true;
  for (let from = prev.length - tail, tries = 0; tries < TRIES; tries += 1) {
    b = prev.indexOf(sep, from);
    if (b === -1) {
      // the settled text is one JSON object: its last brace closes it
      b = prev.lastIndexOf(CLOSE);
      if (b < prev.length - tail) return null;
      [bIsComma, after] = [false, {}];
      break;
    }
    after = parseObject('{' + prev.toString('utf8', b + 1));
    if (after) break;
    from = b + 1;
  }
  if (!after) return null;
  if (b + shift < a) return null;

  const nextPart = middle(next, a, b + shift, aIsComma, bIsComma);
  const prevPart = middle(prev, a, b, aIsComma, bIsComma);
  if (!nextPart || !prevPart) return null;

  // a key also outside the changed part is a key listed twice: the full reading refuses it, and says so
  const keys = Object.keys(nextPart.data);
  for (const path of keys) if (Object.hasOwn(before, path) || Object.hasOwn(after, path)) return null;
  const changed: ParsedManifest = { manifest: {}, problems: [], plain: true };
  acceptEntries(changed, nextPart.data, nextPart.text);
  // the settled text's keys are repository paths, each once: assigning them sets nothing but entries
  const size = Object.keys(before).length + Object.keys(changed.manifest).length + Object.keys(after).length;
  const manifest = Object.assign(before as Manifest, changed.manifest, after as Manifest);
  // (an entry still there but refused is not removed: it is among the changed, and its problem is reported)
  const removed = Object.keys(prevPart.data).filter((path) => !Object.hasOwn(nextPart.data, path));
  // plain: the untouched entries were, and the changed ones are
  return { manifest, problems: changed.problems, plain: changed.plain, changed: new Set(keys), removed, size };
}

/**
 * The entries between the cuts, parsed on their own: after a comma cut the
 * part is empty or starts with a comma; after the opening brace it starts
 * with an entry. Null when the part cannot sit between the cuts in valid JSON.
 */
function middle(
  buf: Buffer,
  a: number,
  b: number,
  aIsComma: boolean,
  bIsComma: boolean,
): { data: Record<string, unknown>; text: string } | null {
  let text = buf.toString('utf8', a, b);
  if (aIsComma) {
    if (text.length === 0) return { data: {}, text: '{}' };
    if (text.charCodeAt(0) !== COMMA) return null;
    text = text.slice(1);
  }
  const blank = isBlank(text);
  // "{ ,..." or ", ,..." are not JSON
  if (blank && (aIsComma || bIsComma)) return null;
  const wrapped = '{' + text + '}';
  const data = parseObject(wrapped);
  if (!data || (!blank && Object.keys(data).length === 0)) return null;
  return { data, text: wrapped };
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i += 1) if (!isJsonSpace(text.charCodeAt(i))) return false;
  return true;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Bytes equal at the start of both, compared natively in blocks. */
function commonPrefix(x: Buffer, y: Buffer): number {
  const n = Math.min(x.length, y.length);
  let i = 0;
  for (let step = 1 << 16; step >= 1; step >>= 4) {
    while (i + step <= n && x.compare(y, i, i + step, i, i + step) === 0) i += step;
  }
  return i;
}

/** Bytes equal at the end of both, at most `max`. */
function commonSuffix(x: Buffer, y: Buffer, max: number): number {
  let i = 0;
  for (let step = 1 << 16; step >= 1; step >>= 4) {
    while (i + step <= max && x.compare(y, y.length - i - step, y.length - i, x.length - i - step, x.length - i) === 0)
      i += step;
  }
  return i;
}
