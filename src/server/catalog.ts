/**
 * What the HTML page shows about each repository: the served manifest's
 * entry plus the bundle count and size from its index.json. Rebuilt when
 * the manifest is replaced (publish renames it last) and at most every few
 * seconds otherwise, so a collection of thousands of repositories is not
 * re-read on every page view.
 */
import { readFile } from 'node:fs/promises';
import { currentBundles, INDEX_FILE, parseRepoIndex } from '../manifest/repo-index.js';
import type { ServedManifest } from './served-manifest.js';
import { diskPathOf } from '../manifest/tree.js';

export interface RepoSummary {
  /** Manifest key, `/pub/a.git`. */
  path: string;
  description: string | null;
  owner: string | null;
  /** Unix seconds, as grokmirror records it. */
  modified: number | null;
  /** Current (not superseded) bundles; null when index.json is missing or unreadable, or no tree is served. */
  bundles: { count: number; size: number } | null;
  /** Refs the index.json lists; null when it is missing or unreadable. */
  refs: number | null;
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

async function summarizeIndex(root: string, repoPath: string): Promise<Pick<RepoSummary, 'bundles' | 'refs'>> {
  try {
    const index = parseRepoIndex(await readFile(diskPathOf(root, repoPath, INDEX_FILE)), repoPath);
    const live = currentBundles(index);
    return {
      bundles: { count: live.length, size: live.reduce((n, b) => n + b.size, 0) },
      refs: Object.keys(index.refs).length,
    };
  } catch {
    return { bundles: null, refs: null };
  }
}

export async function buildCatalog(served: ServedManifest, root: string | null): Promise<Catalog> {
  if (!served.present) return { published: false, repos: [], problems: [] };
  const paths = Object.keys(served.manifest).sort();
  const repos: RepoSummary[] = [];
  for (let i = 0; i < paths.length; i += READ_CONCURRENCY) {
    const batch = paths.slice(i, i + READ_CONCURRENCY);
    const summaries = await Promise.all(
      batch.map(async (path): Promise<RepoSummary> => {
        const entry = served.manifest[path]!;
        return {
          path,
          description: entry.description ?? null,
          owner: entry.owner ?? null,
          modified: entry.modified ?? null,
          ...(root === null ? { bundles: null, refs: null } : await summarizeIndex(root, path)),
        };
      }),
    );
    repos.push(...summaries);
  }
  return { published: true, repos, problems: served.problems.map((p) => `${p.path}: ${p.problem}`) };
}

/**
 * A cached catalog of the served manifest; `root` is the published tree the
 * bundle counts come from (null when only repositories are served).
 */
export function catalogSource(manifest: () => Promise<ServedManifest>, root: string | null): () => Promise<Catalog> {
  let cached: { served: ServedManifest; at: number; value: Promise<Catalog> } | null = null;
  return async () => {
    const served = await manifest();
    const now = Date.now();
    if (!cached || cached.served !== served || now - cached.at > REFRESH_MS) {
      const value = buildCatalog(served, root);
      cached = { served, at: now, value };
      // a failed build must not be served from the cache forever
      value.catch(() => {
        if (cached?.value === value) cached = null;
      });
    }
    return cached.value;
  };
}
