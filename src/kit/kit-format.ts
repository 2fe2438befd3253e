/**
 * An offline kit: one tar file that carries part of a published tree to a
 * replica that cannot reach the origin. Inside, in this order:
 *
 *   kit.json                        what follows: every file with size and sha256
 *   manifest.js.gz                  the collection manifest (grokmirror format)
 *   <repo path>/index.json          per repository: refs, HEAD, the bundles in the kit
 *   <repo path>/<sha256>.bundle     each bundle once, under the first repository that needs it
 *   <repo path>/lfs/objects/ab/cd/<oid>   the Git LFS objects its index lists (as publish lays them out)
 *
 * So an extracted kit is itself a published tree (`serve --bundles` can
 * serve it). An index lists only the bundles the kit holds; a bundle
 * shared by a forkgroup is stored once and the other members' indexes
 * point at it with a relative URI (`../alpha.git/<sha256>.bundle`).
 */
import * as z from 'zod';
import { repoPathProblem } from '../git/refname.js';
import { MAX_BUNDLE_SIZE } from '../manifest/repo-index.js';

export const KIT_FORMAT = 'bundlemirror-kit';
export const KIT_VERSION = 1;
export const KIT_JSON = 'kit.json';
export const KIT_MANIFEST = 'manifest.js.gz';
/** kit.json larger than this is refused before it is parsed. */
export const MAX_KIT_JSON = 64 << 20;
/** manifest.js.gz and index.json files larger than this are refused. */
export const MAX_KIT_DOCUMENT = 256 << 20;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

export const KitFileSchema = z.object({
  name: z.string().min(1).max(4096),
  size: z.number().int().nonnegative().max(MAX_BUNDLE_SIZE),
  sha256,
});
export type KitFile = z.infer<typeof KitFileSchema>;

export const KitSchema = z
  .object({
    format: z.literal(KIT_FORMAT),
    version: z.literal(KIT_VERSION),
    /** ISO time of the export. */
    created: z.string(),
    /** Where it was exported from (a directory or a manifest URL), for people. */
    source: z.string(),
    /** What the kit assumes the replica already has. */
    since: z.object({ kind: z.enum(['nothing', 'manifest', 'toplevel']), location: z.string().nullable() }),
    /** Manifest paths whose index.json (and bundles) the kit carries; the others in its manifest are unchanged. */
    repos: z.array(z.string()).max(1_000_000),
    /** Every file after kit.json, in tar order. */
    files: z.array(KitFileSchema).max(10_000_000),
  })
  .loose();
export type Kit = z.infer<typeof KitSchema>;

export type KitName =
  | { kind: 'manifest' }
  | { kind: 'index'; repo: string }
  | { kind: 'bundle'; repo: string; sha256: string }
  | { kind: 'lfs'; repo: string; oid: string };

const BUNDLE_NAME = /^([0-9a-f]{64})\.bundle$/;

/**
 * What a tar entry name means, or why it is refused. Only names of the
 * shapes above pass: nothing absolute, no `.`, `..` or empty component,
 * no backslash or control character, nothing hidden.
 */
export function parseKitName(name: string): KitName | { problem: string } {
  if (name === '' || name.length > 4096) return { problem: 'is empty or too long' };
  if (name.startsWith('/')) return { problem: 'is an absolute path' };
  if (/[\x00-\x1f\x7f\\]/.test(name)) return { problem: 'contains a control character or backslash' };
  const parts = name.split('/');
  if (parts.some((p) => p === '..' || p === '.')) return { problem: 'contains "." or ".." (path traversal)' };
  if (parts.some((p) => p === '')) return { problem: 'has an empty component' };
  if (name === KIT_MANIFEST) return { kind: 'manifest' };
  const lfs = /^(.+)\/lfs\/objects\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(name);
  if (lfs && lfs[4]!.startsWith(lfs[2]! + lfs[3]!)) {
    const problem = repoPathProblem('/' + lfs[1]!);
    return problem
      ? { problem: `is not under a valid repository path (${problem})` }
      : { kind: 'lfs', repo: '/' + lfs[1]!, oid: lfs[4]! };
  }
  const last = parts.pop()!;
  const repo = '/' + parts.join('/');
  const problem = parts.length === 0 ? 'is not inside a repository directory' : repoPathProblem(repo);
  if (problem) return { problem: `is not under a valid repository path (${problem})` };
  if (last === 'index.json') return { kind: 'index', repo };
  const b = BUNDLE_NAME.exec(last);
  if (b) return { kind: 'bundle', repo, sha256: b[1]! };
  return {
    problem:
      'is not a file a kit holds (manifest.js.gz, <repo>/index.json, <repo>/<sha256>.bundle, <repo>/lfs/objects/..)',
  };
}

/** The kit-relative name of a repository's directory (`pub/a.git`). */
export function kitRepoDir(repo: string): string {
  return repo.slice(1);
}
