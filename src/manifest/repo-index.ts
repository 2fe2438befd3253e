/**
 * Per-repository `index.json`: the complete ref state of one repository and
 * the bundles a replica can build it from. Versioned; a replica refuses a
 * version it does not know rather than guessing.
 */
import * as z from 'zod';
import { BundlemirrorError } from '../errors.js';
import { isValidRefName, refNameProblem } from '../git/refname.js';
import { duplicateKeys } from './duplicate-keys.js';
import { jsonBoundsProblem } from './json-bounds.js';
import { fastRepoIndex } from './fast-validate-index.js';

export const INDEX_VERSION = 1;
export const INDEX_FILE = 'index.json';
export const BUNDLE_LIST_FILE = 'bundle-list';

/** Largest bundle a replica will accept from an index (1 TiB). */
export const MAX_BUNDLE_SIZE = 2 ** 40;

/** A bundle's `uri` relative to its index (a forkgroup member's may climb into its parent's directory). */
export const BUNDLE_PATH = /^(\.\.\/)*([A-Za-z0-9][A-Za-z0-9._-]*\/)*[A-Za-z0-9][A-Za-z0-9._-]*\.bundle$/;

/** Whether a bundle's `uri` is one the format can say: a relative bundle path or an http(s) URL, at most 2048 characters. */
export const isBundleUri = (u: string): boolean =>
  u.length <= 2048 && (BUNDLE_PATH.test(u) || /^https?:\/\/[^\s]+$/.test(u));

/** Most history slices one base may be published as (`slice` counts up to it). */
export const MAX_SLICES = 64;
/** Most parts one base's pack may be published in. */
export const MAX_PACK_PARTS = 256;
/** Bytes of a pack's header and of its SHA-1 trailer. */
const PACK_HEADER = 12;
const PACK_TRAILER = 20;
/** Fewest bytes an object takes in a pack (a header byte and an empty zlib stream). */
const MIN_OBJECT_BYTES = 9;

/** Most LFS objects one index may list. */
const MAX_LFS_OBJECTS = 1_000_000;

/** Why `parts` cannot describe the pack of a bundle of `size` bytes, or null. */
export function packPartsProblem(parts: readonly PackPart[], size: number): string | null {
  for (const [k, p] of parts.entries()) {
    const next = parts[k + 1];
    if (next && p.offset + p.size !== next.offset) return `part ${k} does not end where part ${k + 1} starts`;
    if (p.objects * MIN_OBJECT_BYTES > p.size) return `part ${k} cannot hold ${p.objects} objects in ${p.size} bytes`;
    if (p.after !== undefined && p.after > k) return `part ${k} cannot wait for the part after it`;
  }
  const last = parts[parts.length - 1]!;
  if (last.offset + last.size !== size - PACK_TRAILER) return "the parts do not end at the pack's trailer";
  if (parts[0]!.offset < PACK_HEADER) return 'the first part starts before a pack header fits';
  return null;
}

/**
 * The zod schemas of the format, built the first time something needs
 * them: the hand-written check (fast-validate-index.ts) reads every index
 * that is well formed, so a poll or a publish that meets no broken index
 * never builds them. Building them at import cost a poll of 10,000
 * repositories with one changed 20-30 ms of its 0.4-0.5 s.
 */
function buildSchemas() {
  const oid = z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-hex object id');
  const refName = z.string().max(4096).refine(isValidRefName, 'is not a valid ref name');

  /**
   * A byte range of a base bundle's pack that is a pack of its own but for
   * the header and trailer: whole objects, none a delta against an object
   * outside it, and none linking to an object in a later part. A replica
   * indexes each part as soon as its bytes are in (replica/sync/part-indexer.ts).
   * `after`: only the first `after` parts are needed to prove this part's
   * links (absent: every part before it), so a replica may index it beside
   * the parts between; one that does not know the key indexes it after them.
   */
  const PackPartSchema = z.object({
    /** Byte offset in the bundle file of the part's first object. */
    offset: z.number().int().positive().max(MAX_BUNDLE_SIZE),
    size: z.number().int().positive().max(MAX_BUNDLE_SIZE),
    objects: z
      .number()
      .int()
      .positive()
      .max(2 ** 32 - 1),
    after: z.number().int().nonnegative().max(MAX_PACK_PARTS).optional(),
  });

  const PartsSchema = z.array(PackPartSchema).min(2).max(MAX_PACK_PARTS);

  const BundleRefSchema = z
    .object({
      /**
       * Relative to the index's URL: the bundle's file name, or for a forkgroup
       * member a path into its parent's directory (`../linux.git/<sha256>.bundle`);
       * or an absolute http(s) URL. Replicas accept only URLs under the tree.
       */
      uri: z.string().max(2048).refine(isBundleUri, 'must be a relative bundle path or an http(s) URL'),
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
      size: z.number().int().positive().max(MAX_BUNDLE_SIZE),
      creationToken: z.number().int().nonnegative(),
      prerequisites: z.array(oid).max(1_000_000),
      tips: z.record(refName, oid),
      /** Set when a newer base replaced this bundle; it stays listed for a grace period. */
      superseded: z.string().optional(),
      /**
       * Set on slices 1..N-1 of a base published as a chain of history slices
       * (the base's slice 0 is an ordinary base): part of the base, not an
       * incremental, when the origin decides whether its chain is too long.
       */
      slice: z.number().int().positive().max(MAX_SLICES).optional(),
      /**
       * A base's pack in parts, in order: they follow one another without a
       * gap from the first object to the pack's trailer. Absent for a bundle
       * published in one piece; a replica that does not know the key ignores it.
       */
      parts: PartsSchema.optional(),
    })
    .superRefine((b, ctx) => {
      // zod runs this even when the fields themselves were refused: look at parts only once they are well formed
      const wellFormed = b.parts !== undefined && PartsSchema.safeParse(b.parts).success && typeof b.size === 'number';
      const problem = wellFormed ? packPartsProblem(b.parts!, b.size) : null;
      if (problem) ctx.addIssue({ code: 'custom', path: ['parts'], message: problem });
    });

  const LfsObjectRefSchema = z.object({
    /** sha256 of the object; it is published at `lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>` under the index's directory. */
    oid: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    size: z.number().int().nonnegative().max(MAX_BUNDLE_SIZE),
  });

  const RepoIndexSchema = z.object({
    version: z.literal(INDEX_VERSION),
    path: z.string(),
    generated: z.string(),
    fingerprint: z.string().regex(/^[0-9a-f]{40}$/),
    head: z.string().max(4200).nullable(),
    refs: z.record(refName, oid),
    bundles: z.array(BundleRefSchema).max(10_000),
    forkgroup: z.string().max(256).nullable().optional(),
    /** Root commits reachable from `refs`: how an origin finds forks without walking history again. */
    roots: z.array(oid).max(100_000).optional(),
    /**
     * Git LFS objects reachable from `refs` (absent before the origin knew
     * LFS): `objects` are published beside the index; `missing` were named
     * by a pointer but not in the origin's store when it published.
     */
    lfs: z
      .object({
        objects: z.array(LfsObjectRefSchema).max(MAX_LFS_OBJECTS),
        missing: z.array(LfsObjectRefSchema).max(MAX_LFS_OBJECTS).optional(),
      })
      .optional(),
  });

  return { PackPartSchema, BundleRefSchema, LfsObjectRefSchema, RepoIndexSchema };
}

let built: ReturnType<typeof buildSchemas> | null = null;
export const repoIndexSchemas = (): ReturnType<typeof buildSchemas> => (built ??= buildSchemas());
type Schemas = ReturnType<typeof buildSchemas>;

export type BundleRef = z.infer<Schemas['BundleRefSchema']>;
export type PackPart = z.infer<Schemas['PackPartSchema']>;
export type LfsObjectRef = z.infer<Schemas['LfsObjectRefSchema']>;
export type RepoIndex = z.infer<Schemas['RepoIndexSchema']>;

export function parseRepoIndex(bytes: string | Buffer, repo: string): RepoIndex {
  const text = bytes.toString();
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BundlemirrorError('E_INDEX', `index.json is not valid JSON: ${(err as Error).message}`, {
      repo,
      cause: err,
    });
  }
  if (
    data &&
    typeof data === 'object' &&
    'version' in data &&
    (data as { version: unknown }).version !== INDEX_VERSION
  ) {
    throw new BundlemirrorError(
      'E_INDEX',
      `index.json has version ${String((data as { version: unknown }).version)}, this bundlemirror reads version ${INDEX_VERSION}`,
      {
        repo,
        hint: 'upgrade bundlemirror on this replica',
      },
    );
  }
  // nothing the format defines nests deeper than 4 levels (bundles, tips, ref); unknown keys are dropped, but zod still walks them
  const deep = jsonBoundsProblem(data, { maxDepth: 16, maxBytes: Number.MAX_SAFE_INTEGER });
  if (deep)
    throw new BundlemirrorError('E_INDEX', `index.json ${deep}`, {
      repo,
      hint: 'the origin published a broken index; report it to the origin',
    });
  // refs (or anything else) given twice mean different things to different readers: refuse (src/manifest/duplicate-keys.ts)
  const twice = duplicateKeys(text, 1, data)[0];
  if (twice) {
    throw new BundlemirrorError(
      'E_INDEX',
      `index.json has the key ${JSON.stringify(twice.key)} twice${twice.path.length ? ` in ${twice.path.join('.')}` : ''}`,
      {
        repo,
        hint: 'the origin published a broken index; report it to the origin',
      },
    );
  }
  // the hand-written check first; when it accepts, every ref name is valid and zod would agree
  const fast = fastRepoIndex(data);
  if (fast) {
    if (fast.path !== repo) throw notThisRepository(fast.path, repo);
    return fast;
  }
  // zod only says "Invalid key in record" for a bad ref name: say which name and which rule
  const named = refMaps(data);
  for (const [where, refs] of named) {
    for (const name of Object.keys(refs)) {
      const problem = refNameProblem(name);
      if (problem)
        throw new BundlemirrorError(
          'E_INDEX',
          `index.json ${where} has the ref ${JSON.stringify(name)}, which ${problem}`,
          { repo, hint: 'the origin published an unsafe index; report it to the origin' },
        );
    }
  }
  const parsed = repoIndexSchemas().RepoIndexSchema.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.')}: ${i.message}`)
      .join('; ');
    throw new BundlemirrorError('E_INDEX', `index.json is malformed: ${first}`, {
      repo,
      hint: 'the origin published a broken index; report it to the origin',
    });
  }
  if (parsed.data.path !== repo) throw notThisRepository(parsed.data.path, repo);
  return parsed.data;
}

function notThisRepository(path: string, repo: string): BundlemirrorError {
  return new BundlemirrorError('E_INDEX', `index.json describes ${JSON.stringify(path)}, not this repository`, {
    repo,
  });
}

/** The ref maps of a not yet validated index: `refs` and each bundle's `tips`. */
function refMaps(data: unknown): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isMap(data)) return out;
  if (isMap(data.refs)) out.push(['refs', data.refs]);
  if (Array.isArray(data.bundles))
    data.bundles.forEach((b: unknown, i) => isMap(b) && isMap(b.tips) && out.push([`bundles.${i}.tips`, b.tips]));
  return out;
}

export function serializeRepoIndex(index: RepoIndex): string {
  return JSON.stringify(index, null, 1) + '\n';
}

/** The bundles still current (not superseded), oldest first. */
export function currentBundles(index: RepoIndex): BundleRef[] {
  return index.bundles.filter((b) => !b.superseded).sort((a, b) => a.creationToken - b.creationToken);
}
