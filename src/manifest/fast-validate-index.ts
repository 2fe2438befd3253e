/**
 * index.json checked by hand, for the hot path: a publish reads every
 * repository's index (10,000 of them in a no-op publish of a large
 * collection), and zod took most of the time each one cost. Like the
 * manifest's check (fast-validate.ts), this accepts exactly what
 * `RepoIndexSchema` (from repoIndexSchemas()) accepts and returns the
 * object zod would (the schema's keys in its order, unknown keys left
 * out); whatever it does not accept goes to zod, which decides and words
 * the problem. The property test
 * (test/fast-validate-index.test.ts) holds the two together.
 */
import { isValidRefName } from '../git/refname.js';
import {
  isBundleUri,
  MAX_BUNDLE_SIZE,
  MAX_PACK_PARTS,
  MAX_SLICES,
  packPartsProblem,
  type BundleRef,
  type LfsObjectRef,
  type PackPart,
  type RepoIndex,
} from './repo-index.js';

const OID = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

type Obj = Record<string, unknown>;

/** A plain object as JSON.parse makes them (zod's objects and records take nothing else here). */
function plain(v: unknown): v is Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const oid = (v: unknown) => typeof v === 'string' && OID.test(v);

/** `z.record(refName, oid)`; a `__proto__` key is left to zod. */
function refMap(v: unknown): Record<string, string> | null {
  if (!plain(v)) return null;
  const out: Record<string, string> = {};
  for (const name of Object.keys(v)) {
    const target = v[name];
    if (name === '__proto__' || name.length > 4096 || !isValidRefName(name) || !oid(target)) return null;
    out[name] = target as string;
  }
  return out;
}

function oidList(v: unknown, max: number): string[] | null {
  if (!Array.isArray(v) || v.length > max) return null;
  for (const o of v) if (!oid(o)) return null;
  return v.slice() as string[];
}

function packPart(v: unknown): PackPart | null {
  if (!plain(v)) return null;
  const { offset, size, objects, after } = v;
  if (!isInt(offset) || offset <= 0 || offset > MAX_BUNDLE_SIZE) return null;
  if (!isInt(size) || size <= 0 || size > MAX_BUNDLE_SIZE) return null;
  if (!isInt(objects) || objects <= 0 || objects > 2 ** 32 - 1) return null;
  if (after === undefined) return { offset, size, objects };
  if (!isInt(after) || after < 0 || after > MAX_PACK_PARTS) return null;
  return { offset, size, objects, after };
}

function bundleRef(v: unknown): BundleRef | null {
  if (!plain(v)) return null;
  const { uri, sha256, size, creationToken, superseded, slice, parts } = v;
  if (typeof uri !== 'string' || !isBundleUri(uri)) return null;
  if (typeof sha256 !== 'string' || !SHA256.test(sha256)) return null;
  if (!isInt(size) || size <= 0 || size > MAX_BUNDLE_SIZE) return null;
  if (!isInt(creationToken) || creationToken < 0) return null;
  const prerequisites = oidList(v.prerequisites, 1_000_000);
  const tips = refMap(v.tips);
  if (prerequisites === null || tips === null) return null;
  const out: BundleRef = { uri, sha256, size, creationToken, prerequisites, tips };
  if (superseded !== undefined) {
    if (typeof superseded !== 'string') return null;
    out.superseded = superseded;
  }
  if (slice !== undefined) {
    if (!isInt(slice) || slice <= 0 || slice > MAX_SLICES) return null;
    out.slice = slice;
  }
  if (parts !== undefined) {
    if (!Array.isArray(parts) || parts.length < 2 || parts.length > MAX_PACK_PARTS) return null;
    const checked: PackPart[] = [];
    for (const p of parts) {
      const part = packPart(p);
      if (part === null) return null;
      checked.push(part);
    }
    if (packPartsProblem(checked, size) !== null) return null;
    out.parts = checked;
  }
  return out;
}

function lfsList(v: unknown): LfsObjectRef[] | null {
  if (!Array.isArray(v) || v.length > 1_000_000) return null;
  const out: LfsObjectRef[] = [];
  for (const o of v) {
    if (!plain(o)) return null;
    const { oid: id, size } = o;
    if (typeof id !== 'string' || !SHA256.test(id) || !isInt(size) || size < 0 || size > MAX_BUNDLE_SIZE) return null;
    out.push({ oid: id, size });
  }
  return out;
}

/** The index as zod would return it, or null: then zod must decide (and say why). */
export function fastRepoIndex(value: unknown): RepoIndex | null {
  if (!plain(value)) return null;
  const { version, path, generated, fingerprint, head, forkgroup, roots, lfs } = value;
  if (version !== 1 || typeof path !== 'string' || typeof generated !== 'string') return null;
  if (typeof fingerprint !== 'string' || !OID.test(fingerprint)) return null;
  if (head !== null && !(typeof head === 'string' && head.length <= 4200)) return null;
  const refs = refMap(value.refs);
  if (refs === null || !Array.isArray(value.bundles) || value.bundles.length > 10_000) return null;
  const bundles: BundleRef[] = [];
  for (const b of value.bundles) {
    const ref = bundleRef(b);
    if (ref === null) return null;
    bundles.push(ref);
  }
  const out: RepoIndex = { version, path, generated, fingerprint, head, refs, bundles };
  if (forkgroup !== undefined) {
    if (forkgroup !== null && !(typeof forkgroup === 'string' && forkgroup.length <= 256)) return null;
    out.forkgroup = forkgroup;
  }
  if (roots !== undefined) {
    const list = oidList(roots, 100_000);
    if (list === null) return null;
    out.roots = list;
  }
  if (lfs !== undefined) {
    if (!plain(lfs)) return null;
    const objects = lfsList(lfs.objects);
    if (objects === null) return null;
    out.lfs = { objects };
    if (lfs.missing !== undefined) {
      const missing = lfsList(lfs.missing);
      if (missing === null) return null;
      out.lfs.missing = missing;
    }
  }
  return out;
}
