/**
 * What the HTML page shows about each repository: the manifest entry plus
 * the bundle count and size from its index.json. Rebuilt when the manifest
 * is replaced (publish renames it last) and at most every few seconds
 * otherwise, so a collection of thousands of repositories is not re-read on
 * every page view.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseManifest } from '../manifest/manifest.js';
import { currentBundles, INDEX_FILE, parseRepoIndex } from '../manifest/repo-index.js';
import { MANIFEST_FILE } from './static.js';

export interface RepoSummary {
  /** Manifest key, `/pub/a.git`. */
  path: string;
  description: string | null;
  owner: string | null;
  /** Unix seconds, as grokmirror records it. */
  modified: number | null;
  /** Current (not superseded) bundles; null when index.json is missing or unreadable. */
  bundles: { count: number; size: number } | null;
}

export interface Catalog {
  /** False when no manifest has been published yet. */
  published: boolean;
  repos: RepoSummary[];
  /** Manifest entries that were refused, with why. */
  problems: string[];
}

const REFRESH_MS = 5000;
const READ_CONCURRENCY = 16;

async function summarizeIndex(root: string, repoPath: string): Promise<RepoSummary['bundles']> {
  try {
    const index = parseRepoIndex(await readFile(join(root, ...repoPath.slice(1).split('/'), INDEX_FILE)), repoPath);
    const live = currentBundles(index);
    return { count: live.length, size: live.reduce((n, b) => n + b.size, 0) };
  } catch {
    return null;
  }
}

export async function buildCatalog(root: string): Promise<Catalog> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(root, MANIFEST_FILE));
  } catch {
    return { published: false, repos: [], problems: [] };
  }
  let parsed: ReturnType<typeof parseManifest>;
  try {
    parsed = parseManifest(bytes, MANIFEST_FILE);
  } catch (err) {
    return { published: true, repos: [], problems: [(err as Error).message] };
  }
  const paths = Object.keys(parsed.manifest).sort();
  const repos: RepoSummary[] = [];
  for (let i = 0; i < paths.length; i += READ_CONCURRENCY) {
    const batch = paths.slice(i, i + READ_CONCURRENCY);
    const summaries = await Promise.all(
      batch.map(async (path): Promise<RepoSummary> => {
        const entry = parsed.manifest[path]!;
        return {
          path,
          description: entry.description ?? null,
          owner: entry.owner ?? null,
          modified: entry.modified ?? null,
          bundles: await summarizeIndex(root, path),
        };
      }),
    );
    repos.push(...summaries);
  }
  return { published: true, repos, problems: parsed.problems.map((p) => `${p.path}: ${p.problem}`) };
}

/** A cached catalog for one published tree. */
export function catalogSource(root: string): () => Promise<Catalog> {
  let cached: { key: string; at: number; value: Promise<Catalog> } | null = null;
  return async () => {
    let key = 'none';
    try {
      const st = await stat(join(root, MANIFEST_FILE), { bigint: true });
      key = `${st.ino}-${st.size}-${st.mtimeNs}`;
    } catch {
      /* no manifest yet */
    }
    const now = Date.now();
    if (!cached || cached.key !== key || now - cached.at > REFRESH_MS) {
      const value = buildCatalog(root);
      cached = { key, at: now, value };
      // a failed build must not be served from the cache forever
      value.catch(() => {
        if (cached?.value === value) cached = null;
      });
    }
    return cached.value;
  };
}
