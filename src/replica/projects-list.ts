/**
 * `projects.list` for gitweb and cgit, as grok-pull writes it: one
 * repository per line, relative to the toplevel (no leading `/`, which cgit
 * would misread), with `projectslist_trimtop` removed from the front of
 * paths that start with it, and symlinked paths listed too when
 * `projectslist_symlinks` is on. We sort and de-duplicate the lines (grok-pull
 * writes manifest order) so unchanged collections give identical bytes, and
 * rewrite the file only when its content changes, atomically.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../fs/atomic.js';

export interface ProjectsListOptions {
  /** `projectslist_trimtop`: a prefix removed from paths that start with it. */
  trimtop?: string;
  /** `projectslist_symlinks`: also list each repository's symlinks. */
  symlinks?: boolean;
}

/** Manifest paths, or a manifest-shaped record whose entries may carry `symlinks`. */
export type ProjectsListRepos =
  Iterable<string> | Readonly<Record<string, { symlinks?: readonly string[] | null | undefined }>>;

export function renderProjectsList(repos: ProjectsListRepos, opts: ProjectsListOptions = {}): string {
  const lines = new Set<string>();
  const add = (p: string): void => {
    const trimmed = opts.trimtop && p.startsWith(opts.trimtop) ? p.slice(opts.trimtop.length) : p;
    const line = trimmed.replace(/^\/+/, '');
    if (line !== '') lines.add(line);
  };
  if (isIterable(repos)) {
    for (const p of repos) add(p);
  } else {
    for (const [p, entry] of Object.entries(repos)) {
      add(p);
      if (opts.symlinks) for (const s of entry.symlinks ?? []) add(s);
    }
  }
  const sorted = [...lines].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted.map((l) => `${l}\n`).join('');
}

/**
 * Writes the list when its content differs from what is on disk.
 * Returns whether the file was (re)written and how many lines it holds.
 */
export async function writeProjectsList(
  file: string,
  repos: ProjectsListRepos,
  opts: ProjectsListOptions = {},
): Promise<{ written: boolean; lines: number }> {
  const content = renderProjectsList(repos, opts);
  const lines = content === '' ? 0 : content.split('\n').length - 1;
  let current: string | null = null;
  try {
    current = await readFile(file, 'utf8');
  } catch {
    /* missing or unreadable: write it */
  }
  if (current === content) return { written: false, lines };
  await writeFileAtomic(file, content);
  return { written: true, lines };
}

function isIterable(x: ProjectsListRepos): x is Iterable<string> {
  return typeof (x as Iterable<string>)[Symbol.iterator] === 'function';
}
