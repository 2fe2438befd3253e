/**
 * The base URL written into bundle-lists applies to the whole tree, not only
 * to the repositories a publish happens to change: stock git 2.39 needs
 * absolute URIs, so a tree moved behind a new --base-url must not keep old
 * ones. The base of the last publish is recorded in a dotfile (never
 * served); when it differs, every published bundle-list is written again
 * from its index.json, before the manifest.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import { renderBundleList } from '../manifest/bundle-list.js';
import { BUNDLE_LIST_FILE, INDEX_FILE, parseRepoIndex, type RepoIndex } from '../manifest/repo-index.js';
import { diskPathOf } from '../manifest/tree.js';

const BASE_FILE = '.bundle-list-base';

/** The base URL of one repository's bundle-list, from the tree's base URL. */
export function repoBaseUrl(baseUrl: string | null | undefined, path: string): string | null {
  return baseUrl ? baseUrl.replace(/\/*$/, '/') + path.slice(1) + '/' : null;
}

/**
 * Rewrites the bundle-lists of `paths` (but those `written` in this run) when `baseUrl` is not the
 * one they were written with; `known` holds indexes already in memory. Returns how many.
 */
export async function applyBundleListBase(
  out: string,
  baseUrl: string | null,
  paths: readonly string[],
  written: ReadonlySet<string>,
  known: ReadonlyMap<string, RepoIndex>,
): Promise<number> {
  const recorded = await readFile(join(out, BASE_FILE), 'utf8').catch(() => null);
  if (recorded === (baseUrl ?? '')) return 0;
  let rewritten = 0;
  for (const path of paths) {
    if (written.has(path)) continue; // written with this base in this run
    const dir = diskPathOf(out, path);
    let index = known.get(path);
    try {
      index ??= parseRepoIndex(await readFile(join(dir, INDEX_FILE)), path);
    } catch {
      continue; // a repository that failed to publish keeps its files; the next publish tries again
    }
    await writeFileAtomic(join(dir, BUNDLE_LIST_FILE), renderBundleList(index.bundles, repoBaseUrl(baseUrl, path)));
    rewritten++;
  }
  await writeFileAtomic(join(out, BASE_FILE), baseUrl ?? '');
  return rewritten;
}
