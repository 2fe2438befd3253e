/**
 * Manifest entries checked by hand, for the hot path. Every poll of a
 * changed manifest and every publish reads all entries of the collection:
 * zod took some 20 µs an entry, a fifth of a second for 10,000, which a
 * hook publish and a poll pay for one changed repository. This accepts
 * exactly what `ManifestEntrySchema` accepts and returns the object zod
 * would (the schema's keys in its order, then the unknown keys as given).
 * Whatever it does not accept goes to zod, which decides and words the
 * problem, so an error reads the same as before. The property test
 * (test/fast-validate.test.ts) holds the two together.
 */
import type { ManifestEntry } from './manifest.js';

const SHA1 = /^[0-9a-f]{40}$/;

/** `ManifestEntrySchema`'s keys, in its order, with their string limits. */
const TEXT_LIMITS: [string, number][] = [
  ['head', 4200],
  ['description', 65536],
  ['owner', 4096],
  ['reference', 1024],
  ['forkgroup', 256],
];
const SCHEMA_ORDER = ['fingerprint', 'modified', 'head', 'description', 'owner', 'reference', 'forkgroup', 'symlinks'];
const KNOWN = new Set(SCHEMA_ORDER);
const MAX_SYMLINKS = 10000;
const MAX_SYMLINK_LENGTH = 1024;

/** The entry as zod would return it, or null: then zod must decide (and say why). */
export function fastManifestEntry(value: unknown): ManifestEntry | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  // JSON.parse makes plain objects; anything else is left to zod
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return null;
  const v = value as Record<string, unknown>;
  const fp = v.fingerprint;
  if (fp !== undefined && fp !== null && !(typeof fp === 'string' && SHA1.test(fp))) return null;
  const modified = v.modified;
  if (modified !== undefined && !(typeof modified === 'number' && Number.isSafeInteger(modified) && modified >= 0))
    return null;
  for (const [key, max] of TEXT_LIMITS) {
    const s = v[key];
    if (s !== undefined && s !== null && !(typeof s === 'string' && s.length <= max)) return null;
  }
  const symlinks = v.symlinks;
  if (symlinks !== undefined) {
    if (!Array.isArray(symlinks) || symlinks.length > MAX_SYMLINKS) return null;
    for (const s of symlinks) if (typeof s !== 'string' || s.length > MAX_SYMLINK_LENGTH) return null;
  }
  const out: Record<string, unknown> = {};
  for (const key of SCHEMA_ORDER) if (key in v) out[key] = v[key];
  // zod leaves out a "__proto__" key (assigning it would change the object's prototype)
  for (const key of Object.keys(v)) if (!KNOWN.has(key) && key !== '__proto__') out[key] = v[key];
  return out as ManifestEntry;
}

/** Whether an entry has keys the format does not define (they need a bounds check). */
export function hasUnknownKeys(value: object): boolean {
  for (const key in value) if (!KNOWN.has(key)) return true;
  return false;
}
