/**
 * The collection manifest in grokmirror's format (`manifest.js.gz`): one
 * JSON object keyed by repository path (`/pub/a.git`). We read what
 * grokmirror writes and write what grokmirror reads; extra keys are kept.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { BundlemirrorError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';
import { repoPathProblem } from '../git/refname.js';

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

/** A manifest larger than this once unpacked is refused (gzip bombs). */
export const MAX_MANIFEST_BYTES = 512 << 20;

export interface ManifestProblem {
  path: string;
  problem: string;
}

/**
 * Parses manifest bytes (gzip or plain JSON). Entries that are unsafe or
 * malformed are returned as problems rather than failing the whole manifest,
 * so one bad entry never stops the rest of the collection from syncing.
 */
export function parseManifest(bytes: Buffer, source = 'manifest'): { manifest: Manifest; problems: ManifestProblem[] } {
  let text: string;
  try {
    const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes, { maxOutputLength: MAX_MANIFEST_BYTES }) : bytes;
    text = raw.toString('utf8');
  } catch (err) {
    throw new BundlemirrorError('E_MANIFEST', `${source}: cannot unpack: ${(err as Error).message}`, {
      hint: 'the manifest is corrupt or larger than 512 MiB unpacked; check the origin',
      cause: err,
    });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new BundlemirrorError('E_MANIFEST', `${source}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new BundlemirrorError('E_MANIFEST', `${source}: not a JSON object of repositories`);
  }
  const manifest: Manifest = {};
  const problems: ManifestProblem[] = [];
  for (const [path, value] of Object.entries(data as Record<string, unknown>)) {
    const pathProblem = repoPathProblem(path);
    if (pathProblem) {
      problems.push({ path, problem: `repository path ${pathProblem}` });
      continue;
    }
    const parsed = ManifestEntrySchema.safeParse(value);
    if (!parsed.success) {
      problems.push({ path, problem: parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; ') });
      continue;
    }
    const symlinkProblem = (parsed.data.symlinks ?? []).map((s) => repoPathProblem(s)).find((p) => p !== null);
    if (symlinkProblem) {
      problems.push({ path, problem: `symlink ${symlinkProblem}` });
      continue;
    }
    manifest[path] = parsed.data;
  }
  return { manifest, problems };
}

export async function readManifestFile(file: string): Promise<Manifest> {
  const bytes = await readFile(file);
  return parseManifest(bytes, file).manifest;
}

/** Serialises with sorted keys so unchanged collections produce identical bytes. */
export function serializeManifest(manifest: Manifest): Buffer {
  const sorted: Manifest = {};
  for (const key of Object.keys(manifest).sort()) sorted[key] = manifest[key]!;
  // mtime 0 in the gzip header keeps the bytes reproducible
  return gzipSync(Buffer.from(JSON.stringify(sorted, null, 1) + '\n', 'utf8'), { level: 9 });
}

export async function writeManifestFile(file: string, manifest: Manifest): Promise<void> {
  if (file.endsWith('.gz')) await writeFileAtomic(file, serializeManifest(manifest));
  else {
    const sorted: Manifest = {};
    for (const key of Object.keys(manifest).sort()) sorted[key] = manifest[key]!;
    await writeFileAtomic(file, JSON.stringify(sorted, null, 1) + '\n');
  }
}
