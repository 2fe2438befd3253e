/**
 * Health checks and housekeeping of bare repositories (`bundlemirror
 * fsck`): `git fsck` (full or connectivity only), a bitmapped `git
 * repack`, and a commit-graph.
 */
import { git } from './exec.js';

export interface FsckResult {
  ok: boolean;
  /** git's exit status (a bit mask of the problems found; 128 when it died). */
  exitCode: number;
  /** The lines that report problems (errors, missing, broken links, bad objects), at most `maxLines`. */
  problems: string[];
  /** Everything git printed, trimmed. */
  output: string;
}

/** Lines of `git fsck` output that are diagnostics rather than progress or notices. */
const PROBLEM = /^(error|fatal|missing|broken link|bad|invalid|corrupt)|is corrupt|unable to|did not point|could not/i;

export interface FsckOptions {
  signal?: AbortSignal;
  maxLines?: number;
  /**
   * `--connectivity-only`: every object reachable from a ref must be
   * there, but blobs are not read and nothing is hashed. Much cheaper;
   * finds missing objects, not corrupt ones.
   */
  connectivityOnly?: boolean;
  /** Lines containing any of these strings are not problems (grokmirror's `ignore_errors`). */
  ignore?: readonly string[];
}

/**
 * `git fsck --full` with connectivity (the default): every object in every
 * pack is hashed, every object reachable from a ref must be there. Never
 * throws for a corrupt repository: the result says what git found. A
 * failure whose every diagnostic line is ignored counts as healthy.
 */
export async function fsckFull(gitDir: string, repo?: string, opts: FsckOptions = {}): Promise<FsckResult> {
  const okCodes = Array.from({ length: 255 }, (_, i) => i + 1);
  const args = ['fsck', opts.connectivityOnly ? '--connectivity-only' : '--full', '--no-progress', '--no-dangling'];
  const r = await git(args, {
    gitDir,
    repo,
    okCodes,
    signal: opts.signal,
  });
  const output = (r.stderr + r.stdout.toString('utf8')).trim();
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const ignore = (opts.ignore ?? []).filter((i) => i !== '');
  const ignored = (l: string) => ignore.some((i) => l.includes(i));
  // exit 0 with warnings (old tags without a tagger, ...) is a healthy repository
  const problems = r.code === 0 ? [] : lines.filter((l) => PROBLEM.test(l) && !ignored(l));
  const anyIgnored = lines.some(ignored);
  if (r.code !== 0 && problems.length === 0 && !anyIgnored)
    problems.push(...lines.slice(-3), `git fsck exited with status ${r.code}`);
  return { ok: problems.length === 0, exitCode: r.code, problems: problems.slice(0, opts.maxLines ?? 20), output };
}

/** Every value of a multi-valued config key (empty when unset). */
export async function configGetAll(gitDir: string, key: string, repo?: string): Promise<string[]> {
  const r = await git(['config', '--get-all', key], { gitDir, repo, okCodes: [1] });
  return r.code === 0
    ? r.stdout
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '')
    : [];
}

export interface RepackOptions {
  /** Write a reachability bitmap (`-b`); impossible when objects are borrowed through alternates. */
  bitmaps?: boolean;
  /** `-l`: leave objects borrowed through alternates where they are, instead of copying them in. */
  local?: boolean;
  /** Pass `--delta-islands` (only useful when `pack.island` is configured). */
  deltaIslands?: boolean;
  /** `-f`: compute every delta afresh instead of reusing the old ones (slow; packs tighter). */
  full?: boolean;
  /** More options for git repack (each starts with `-`), e.g. `--window=250`. */
  extraFlags?: readonly string[];
  signal?: AbortSignal;
}

/**
 * `git repack -a -d`: everything into one pack, old packs and loose objects
 * removed. git keeps the old packs until the new one is complete, so an
 * interrupted repack loses nothing.
 */
export async function repackAll(gitDir: string, repo?: string, opts: RepackOptions = {}): Promise<void> {
  const args = ['repack', '-a', '-d', '-q'];
  if (opts.bitmaps) args.push('-b');
  if (opts.local) args.push('-l');
  if (opts.deltaIslands) args.push('--delta-islands');
  if (opts.full) args.push('-f');
  for (const f of opts.extraFlags ?? []) {
    // repack takes no operands: anything else would be a mistake in the config, never a path
    if (!f.startsWith('-')) throw new Error(`git repack option ${JSON.stringify(f)} does not start with "-"`);
    args.push(f);
  }
  await git(args, { gitDir, repo, signal: opts.signal });
}

/** `git commit-graph write --reachable`: a graph of every commit reachable from a ref, which speeds up history walks. */
export async function writeCommitGraph(
  gitDir: string,
  repo?: string,
  opts: { signal?: AbortSignal } = {},
): Promise<void> {
  await git(['commit-graph', 'write', '--reachable'], { gitDir, repo, signal: opts.signal });
}
