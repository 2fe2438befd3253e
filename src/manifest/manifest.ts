/**
 * The collection manifest in grokmirror's format (`manifest.js.gz`): one
 * JSON object keyed by repository path (`/pub/a.git`). We read what
 * grokmirror writes and write what grokmirror reads; extra keys are kept.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { BundlemirrorError } from '../errors.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { repoPathProblem } from '../git/refname.js';
import { duplicateKeys } from './duplicate-keys.js';
import { jsonBoundsProblem } from './json-bounds.js';
import { quoteUntrusted, unsafeTextProblem } from '../format/untrusted.js';
import { fastManifestEntry, hasUnknownKeys } from './fast-validate.js';

const sha1 = z.string().regex(/^[0-9a-f]{40}$/, 'must be 40 lowercase hex digits');

export const ManifestEntrySchema = z
  .object({
    fingerprint: sha1.nullable().optional(),
    modified: z.number().int().nonnegative().optional(),
    head: z.string().max(4200).nullable().optional(),
    description: z.string().max(65536).nullable().optional(),
    owner: z.string().max(4096).nullable().optional(),
    reference: z.string().max(1024).nullable().optional(),
    forkgroup: z.string().max(256).nullable().optional(),
    symlinks: z.array(z.string().max(1024)).max(10000).optional(),
  })
  .loose();

export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;
export type Manifest = Record<string, ManifestEntry>;

/**
 * A manifest larger than this once unpacked is refused (gzip bombs). It is
 * also about the memory a refusal costs, since inflation stops only here:
 * 128 MiB holds some 250,000 repositories, while 512 MiB made a 2 MB
 * download cost 650 MB of memory (test/reliability/hostile.test.ts).
 */
export const MAX_MANIFEST_BYTES = 128 << 20;

export interface ManifestProblem {
  path: string;
  problem: string;
}

/** A manifest read and checked: the entries accepted, and why the others were refused. */
export interface ParsedManifest {
  manifest: Manifest;
  problems: ManifestProblem[];
  /**
   * Every entry was accepted as it came, with a fingerprint and no keys
   * the format does not define: a manifest a later one may be read as an
   * edit of (manifest-edit.ts), once the replica has acted on all of it.
   */
  plain: boolean;
}

/**
 * Parses manifest bytes (gzip or plain JSON). Entries that are unsafe or
 * malformed are returned as problems rather than failing the whole manifest,
 * so one bad entry never stops the rest of the collection from syncing.
 */
export function parseManifest(bytes: Buffer, source = 'manifest'): ParsedManifest {
  const text = unpackManifest(bytes, source).toString('utf8');
  const data = parseManifestObject(text, source);
  const out: ParsedManifest = { manifest: {}, problems: [], plain: true };
  acceptEntries(out, data, text);
  return out;
}

/**
 * A manifest whose bytes are proved to be ones bundlemirror wrote from
 * entries it had checked (the origin's own, src/origin/manifest-writer.ts):
 * read without checking each entry again, which costs a hook publish among
 * 10,000 repositories more than anything else it reads.
 */
export function parseOwnManifest(bytes: Buffer, source: string): { manifest: Manifest; json: Buffer } {
  const json = unpackManifest(bytes, source);
  return { manifest: parseManifestObject(json.toString('utf8'), source) as Manifest, json };
}

/** The manifest's JSON text as bytes: gzip is unpacked, within MAX_MANIFEST_BYTES. */
export function unpackManifest(bytes: Buffer, source: string): Buffer {
  try {
    return bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes, { maxOutputLength: MAX_MANIFEST_BYTES }) : bytes;
  } catch (err) {
    const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError;
    const why = tooBig
      ? `it unpacks to more than ${MAX_MANIFEST_BYTES >> 20} MiB (a gzip bomb, or not a manifest)`
      : (err as Error).message;
    throw new BundlemirrorError('E_MANIFEST', `${source}: cannot unpack: ${why}`, {
      hint: `the manifest is corrupt or larger than ${MAX_MANIFEST_BYTES >> 20} MiB unpacked; check the origin`,
      cause: err,
    });
  }
}

function parseManifestObject(text: string, source: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BundlemirrorError('E_MANIFEST', `${source}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new BundlemirrorError('E_MANIFEST', `${source}: not a JSON object of repositories`);
  }
  return data as Record<string, unknown>;
}

/**
 * Checks the entries of `data`, the JSON object parsed from `text`, and
 * adds them to `out`: accepted ones to its manifest, the others to its
 * problems. Also used for the changed part of a manifest read as an edit.
 */
export function acceptEntries(out: ParsedManifest, data: Record<string, unknown>, text: string): void {
  const { manifest, problems } = out;
  // JSON.parse keeps the last of two equal keys, other readers the first: refuse such entries rather than guess
  const doubled = new Map(
    duplicateKeys(text, 100, data).map(
      (d) =>
        [d.path[0] ?? d.key, d.path.length ? `has the key ${JSON.stringify(d.key)} twice` : 'is listed twice'] as const,
    ),
  );
  for (const [path, value] of Object.entries(data)) {
    const pathProblem = repoPathProblem(path);
    if (pathProblem) {
      // names with control characters are quoted: they reach terminals and logs
      problems.push({
        path: unsafeTextProblem(path) ? quoteUntrusted(path) : path,
        problem: `repository path ${pathProblem}`,
      });
      continue;
    }
    const twice = doubled.get(path);
    if (twice) {
      problems.push({ path, problem: `${twice} in the manifest; refusing to guess which one is meant` });
      continue;
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && hasUnknownKeys(value)) {
      out.plain = false;
      const extraProblem = unknownKeysProblem(value);
      if (extraProblem) {
        problems.push({ path, problem: extraProblem });
        continue;
      }
    }
    // the hand-written check first (src/manifest/fast-validate.ts); zod decides, and says why, when it refuses
    let entry = fastManifestEntry(value);
    if (!entry?.fingerprint) out.plain = false;
    if (!entry) {
      const parsed = ManifestEntrySchema.safeParse(value);
      if (!parsed.success) {
        problems.push({
          path,
          problem: parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; '),
        });
        continue;
      }
      entry = parsed.data;
    }
    const symlinkProblem = entry.symlinks?.length
      ? entry.symlinks.map((s) => repoPathProblem(s)).find((p) => p !== null)
      : undefined;
    if (symlinkProblem) {
      problems.push({ path, problem: `symlink ${symlinkProblem}` });
      continue;
    }
    manifest[path] = entry;
  }
  if (problems.length > 0) out.plain = false;
}

/** Keys this format defines; others are kept (grokmirror ignores them), within bounds. */
const KNOWN_KEYS = new Set(Object.keys(ManifestEntrySchema.shape));

/**
 * What an entry may hold besides the keys we know: a few levels of nesting
 * and 64 KiB in all (src/manifest/json-bounds.ts says why).
 */
const MAX_EXTRA_DEPTH = 8;
const MAX_EXTRA_BYTES = 64 << 10;

function unknownKeysProblem(value: object): string | null {
  const extra = Object.fromEntries(Object.entries(value).filter(([k]) => !KNOWN_KEYS.has(k)));
  const problem = jsonBoundsProblem(extra, { maxDepth: MAX_EXTRA_DEPTH, maxBytes: MAX_EXTRA_BYTES });
  return problem ? `its unknown keys ${problem}` : null;
}

export async function readManifestFile(file: string): Promise<Manifest> {
  const bytes = await readFile(file);
  return parseManifest(bytes, file).manifest;
}

/**
 * A manifest kept on disk (a replica's own, a kit's target): null when
 * there is none. One that exists but cannot be read or parsed is treated
 * as absent: every caller rebuilds it from the repositories.
 */
export async function readManifestIfAny(file: string): Promise<Manifest | null> {
  return (await readManifestWithText(file))?.manifest ?? null;
}

/** A manifest read from disk, with its text when it is proved ours. */
export interface ManifestRead {
  manifest: Manifest;
  /** The JSON (unpacked) of a manifest `own` proved ours, which a later write may splice into (manifest-splice.ts); null otherwise. */
  ownJson: Buffer | null;
}

/** readManifestIfAny, keeping the text of a manifest proved ours. */
export async function readManifestWithText(
  file: string,
  unreadable?: (why: string) => void,
  own?: (bytes: Buffer) => Promise<boolean>,
): Promise<ManifestRead | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unreadable?.((err as Error).message);
    return null;
  }
  try {
    if (!own || !(await own(bytes))) return { manifest: parseManifest(bytes, file).manifest, ownJson: null };
    const ours = parseOwnManifest(bytes, file);
    return { manifest: ours.manifest, ownJson: ours.json };
  } catch (err) {
    unreadable?.((err as Error).message);
    return null;
  }
}

/**
 * The order of an entry's keys when written; unknown keys follow in the
 * order they came. One order whatever made the entry (a publish, a parse
 * of the previous manifest), so the same collection is always the same
 * bytes: a hook publish that carries the other 9,999 entries over and a
 * full publish that builds them again write identical files.
 */
const WRITE_ORDER = ['modified', 'fingerprint', 'head', 'reference', 'description', 'owner', 'forkgroup', 'symlinks'];

function canonicalEntry(entry: ManifestEntry): ManifestEntry {
  const out: Record<string, unknown> = {};
  for (const key of WRITE_ORDER) if (key in entry) out[key] = entry[key];
  for (const key of Object.keys(entry)) if (!Object.hasOwn(out, key)) out[key] = entry[key];
  return out as ManifestEntry;
}

/** The manifest's JSON text, as written (gzipped or not). */
export function manifestText(manifest: Manifest): string {
  const sorted: Manifest = {};
  for (const key of Object.keys(manifest).sort()) sorted[key] = canonicalEntry(manifest[key]!);
  return JSON.stringify(sorted, null, 1) + '\n';
}

/**
 * One entry's text as `manifestText` writes it inside the whole (` "KEY": {`
 * … `\n }`, without separator), for src/manifest/manifest-splice.ts; null
 * when the entry would not be written as one.
 */
export function entryText(key: string, entry: ManifestEntry): string | null {
  // assigned like manifestText does, so a key JavaScript treats specially is treated the same
  const one: Manifest = {};
  one[key] = canonicalEntry(entry);
  const text = JSON.stringify(one, null, 1);
  return text.startsWith('{\n "') ? text.slice(2, -2) : null;
}

/**
 * gzip level of the manifest: level 4 packs a 10,000-repository manifest
 * (2.2 MB of JSON) 2.6% larger than level 9 in a fifth of the time (22 ms
 * against 116 ms), which every hook publish and every poll that writes the
 * local manifest would otherwise pay. Any gzip reader takes any level.
 */
const MANIFEST_GZIP_LEVEL = 4;

/** Serialises with sorted keys so unchanged collections produce identical bytes. */
export function serializeManifest(manifest: Manifest): Buffer {
  return packManifest(Buffer.from(manifestText(manifest), 'utf8'));
}

/** gzip of a manifest's JSON, as serializeManifest writes it. */
export function packManifest(json: Buffer): Buffer {
  // mtime 0 in the gzip header keeps the bytes reproducible
  return gzipSync(json, { level: MANIFEST_GZIP_LEVEL });
}

export async function writeManifestFile(file: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(file, file.endsWith('.gz') ? serializeManifest(manifest) : manifestText(manifest));
}
