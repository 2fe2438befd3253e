/**
 * History questions asked when a base is published as a chain of slices
 * or in parts, and when a replica proves such a chain connected one slice
 * at a time.
 */
import { git, gitText } from './exec.js';
import { isObjectId, oidKey } from './refname.js';

/** The commits on `tip`'s first-parent line, oldest first. */
export async function firstParentLine(gitDir: string, tip: string, repo?: string): Promise<string[]> {
  if (!isObjectId(tip)) return [];
  const out = await gitText(['rev-list', '--first-parent', '--reverse', '--stdin'], {
    gitDir,
    repo,
    input: `${tip}\n`,
  });
  return out ? out.split('\n').filter(isObjectId) : [];
}

/** Bytes of the repository's packs and loose objects (`git count-objects -v`). */
export async function storedBytes(gitDir: string, repo?: string): Promise<number> {
  const out = await gitText(['count-objects', '-v'], { gitDir, repo });
  let kib = 0;
  for (const line of out.split('\n')) {
    const m = /^(size|size-pack): (\d+)$/.exec(line);
    if (m) kib += Number(m[2]);
  }
  return kib * 1024;
}

/**
 * Whether every object reachable from `tips` is present, walking only what
 * is not reachable from `known` (commits already proved connected): the
 * walk a chain of bundles needs is then one slice's worth, not the whole
 * history that `rev-list --not --all` in a repository without refs walks.
 */
export async function connectedAbove(gitDir: string, tips: string[], known: string[], repo?: string): Promise<boolean> {
  const ids = tips.filter(isObjectId);
  if (ids.length === 0) return true;
  const input = [...ids, ...known.filter(isObjectId).map((k) => `^${k}`)].join('\n') + '\n';
  const r = await git(['rev-list', '--objects', '--quiet', '--stdin'], { gitDir, repo, input, okCodes: [1, 128] });
  return r.code === 0;
}

/**
 * The depth at which the walk from `tips` first meets each tree (0 for a
 * commit's root tree, 1 for a directory in it, ...), keyed by `oidKey`.
 * A tree met at several depths gets the first; the caller uses depths to
 * order parts, and a replica's link check catches a depth guessed wrong.
 */
export async function treeDepths(gitDir: string, tips: readonly string[], repo?: string): Promise<Map<number, number>> {
  const r = await git(['rev-list', '--objects', '--filter=object:type=tree', '--stdin'], {
    gitDir,
    repo,
    input: tips.filter(isObjectId).join('\n') + '\n',
  });
  const out = r.stdout.toString('latin1');
  const depths = new Map<number, number>();
  let start = 0;
  while (start < out.length) {
    let end = out.indexOf('\n', start);
    if (end < 0) end = out.length;
    // "<oid>" for a commit, "<oid> <path>" for a tree ("<oid> " for a root tree)
    if (end - start > 40 && out.charCodeAt(start + 40) === 32) {
      const path = out.slice(start + 41, end);
      let depth = path === '' ? 0 : 1;
      for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) depth += 1;
      depths.set(oidKey(out, start), depth);
    }
    start = end + 1;
  }
  return depths;
}
