/**
 * The shape of what the replica records (state.json and its journal), as
 * zod schemas. Reading and writing go through hand-written checks
 * (state-validate.ts) that accept exactly what these accept; these are
 * loaded only when those refuse something, to decide and to say why.
 */
import * as z from 'zod';

const sha1 = z.string().regex(/^[0-9a-f]{40}$/);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const RepoErrorSchema = z.object({
  message: z.string(),
  /** BundlemirrorError code, or the errno code, or E_UNKNOWN. */
  code: z.string(),
  /** ISO time. */
  at: z.string(),
});

export const RepoStateSchema = z
  .object({
    /** Fingerprint last verified on disk; null: repository has no refs, or not verified yet. */
    fingerprint: sha1.nullable(),
    head: z.string().nullable().optional(),
    description: z.string().nullable().optional(),
    owner: z.string().nullable().optional(),
    /** Symlinks (manifest paths) we created pointing at this repository. */
    symlinks: z.array(z.string()).optional(),
    /** ISO time of the last verified sync. */
    lastSuccess: z.string().optional(),
    /** Set by a failed attempt, cleared by the next success; the planner retries such repositories. */
    lastError: RepoErrorSchema.optional(),
    /** Consecutive failed attempts. */
    failures: z.number().int().nonnegative().optional(),
    /** sha256 of bundles already unbundled into this repository. */
    appliedBundles: z.array(sha256).optional(),
  })
  .loose();
export type RepoState = z.infer<typeof RepoStateSchema>;
export type RepoError = z.infer<typeof RepoErrorSchema>;

export const ManifestValidatorsSchema = z.object({
  /** The manifest URL these belong to: validators for another URL are useless. */
  url: z.string(),
  etag: z.string().nullable(),
  lastModified: z.string().nullable(),
  /** ISO time of the fetch. */
  fetchedAt: z.string(),
  /** Config file mtime at the fetch; grok-pull refetches in full after a config change. */
  configMtimeMs: z.number().optional(),
  /**
   * sha256 of the manifest bytes kept beside the state when a complete run
   * acted on every entry of them, with nothing refused, failed or left over:
   * the next changed manifest may be read as an edit of those bytes.
   */
  settled: sha256.optional(),
});
export type ManifestValidators = z.infer<typeof ManifestValidatorsSchema>;
