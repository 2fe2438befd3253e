/**
 * What the replica records (state.json and its journal), checked by hand. A
 * pull reads the state of every repository of the collection; with zod a
 * read of 10,000 entries cost a fifth of a second, and loading zod alone a
 * twentieth. These accept exactly what the schemas of state-schema.ts
 * accept and return the object zod would (the schema's keys in its order, a
 * `lastError` cut to its three keys, then the unknown keys as given);
 * whatever they do not accept goes to zod, which decides.
 * test/state-validate.test.ts holds the two together.
 */
import type { ManifestValidators, RepoState } from './state-schema.js';

const SHA1 = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SCHEMA_ORDER = [
  'fingerprint',
  'head',
  'description',
  'owner',
  'symlinks',
  'lastSuccess',
  'lastError',
  'failures',
  'appliedBundles',
];
const KNOWN = new Set(SCHEMA_ORDER);
const POSITION = new Map(SCHEMA_ORDER.map((k, i) => [k, i]));
const ERROR_ORDER = ['message', 'code', 'at'];

/** Keys already in the schema's order and none unknown: the object is what zod would return, and is returned itself. */
function inSchemaOrder(value: Record<string, unknown>): boolean {
  let last = -1;
  for (const key in value) {
    const at = POSITION.get(key);
    if (at === undefined || at <= last) return false;
    last = at;
  }
  const error = value.lastError;
  if (error === undefined) return true;
  let i = 0;
  for (const key in error as object) if (ERROR_ORDER[i++] !== key) return false;
  return i === ERROR_ORDER.length;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
};

const optionalText = (v: unknown) => v === undefined || v === null || typeof v === 'string';

const stringsMatching = (v: unknown, re: RegExp | null) =>
  Array.isArray(v) && v.every((s) => typeof s === 'string' && (re === null || re.test(s)));

/** The entry as zod would return it, or null: then zod must decide. */
export function fastRepoState(value: unknown): RepoState | null {
  if (!isPlainObject(value)) return null;
  const fp = value.fingerprint;
  if (fp !== null && !(typeof fp === 'string' && SHA1.test(fp))) return null;
  if (!optionalText(value.head) || !optionalText(value.description) || !optionalText(value.owner)) return null;
  if (value.symlinks !== undefined && !stringsMatching(value.symlinks, null)) return null;
  if (value.lastSuccess !== undefined && typeof value.lastSuccess !== 'string') return null;
  const failures = value.failures;
  if (failures !== undefined && !(typeof failures === 'number' && Number.isSafeInteger(failures) && failures >= 0))
    return null;
  if (value.appliedBundles !== undefined && !stringsMatching(value.appliedBundles, SHA256)) return null;
  const error = value.lastError;
  if (
    error !== undefined &&
    !(
      isPlainObject(error) &&
      typeof error.message === 'string' &&
      typeof error.code === 'string' &&
      typeof error.at === 'string'
    )
  )
    return null;
  // entries this replica wrote itself (nearly all): no copy of 10,000 objects for the collector
  if (inSchemaOrder(value)) return value as RepoState;
  const out: Record<string, unknown> = {};
  for (const key of SCHEMA_ORDER) if (key in value) out[key] = value[key];
  // lastError is a strict object: zod keeps its three keys only
  if (isPlainObject(error)) out.lastError = { message: error.message, code: error.code, at: error.at };
  for (const key of Object.keys(value)) if (!KNOWN.has(key) && key !== '__proto__') out[key] = value[key];
  return out as RepoState;
}

/** The manifest's validators as zod would return them (its own keys only), or null: then zod must decide. */
export function fastManifestValidators(value: unknown): ManifestValidators | null {
  if (!isPlainObject(value)) return null;
  const { url, etag, lastModified, fetchedAt, configMtimeMs, settled } = value;
  if (typeof url !== 'string' || typeof fetchedAt !== 'string') return null;
  if (!(etag === null || typeof etag === 'string') || !(lastModified === null || typeof lastModified === 'string'))
    return null;
  if (configMtimeMs !== undefined && !(typeof configMtimeMs === 'number' && Number.isFinite(configMtimeMs)))
    return null;
  if (settled !== undefined && !(typeof settled === 'string' && SHA256.test(settled))) return null;
  const out: ManifestValidators = { url, etag, lastModified, fetchedAt };
  if ('configMtimeMs' in value) out.configMtimeMs = configMtimeMs as number | undefined;
  if ('settled' in value) out.settled = settled as string | undefined;
  return out;
}
