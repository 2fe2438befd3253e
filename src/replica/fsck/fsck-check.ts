/**
 * One repository's health as `fsck` sees it: `git fsck` findings, corrupt
 * LFS objects, and refs that differ from what pull last verified; and
 * which of those findings call for cloning it again.
 */
import { fingerprint } from '../../git/repo.js';
import { fsckFull } from '../../git/maintenance.js';
import type { StateStore } from '../state.js';
import type { Target } from './fsck-targets.js';
import { lfsProblems } from './fsck-lfs.js';

export interface CheckOptions {
  signal?: AbortSignal;
  /** `git fsck --connectivity-only` (always so for a repository that borrows from a forkgroup store: the store gets the full check). */
  connectivityOnly?: boolean;
  /** git fsck lines containing one of these are not problems (`[fsck] ignore_errors`). */
  ignore?: readonly string[];
}

const GIT_FSCK = 'git fsck';

/** What is wrong with one repository: git fsck findings, and refs that differ from what pull last verified. */
export async function checkTarget(t: Target, state: StateStore, opts: CheckOptions = {}): Promise<string[]> {
  const problems: string[] = [];
  try {
    // a member's full check would hash its whole store again, once per member
    const connectivityOnly = opts.connectivityOnly || t.store !== null;
    const result = await fsckFull(t.dir, t.path, { signal: opts.signal, connectivityOnly, ignore: opts.ignore });
    if (!result.ok) problems.push(...result.problems.map((p) => `${GIT_FSCK}: ${p}`));
  } catch (err) {
    // Ctrl-C is no finding about the repository
    if (opts.signal?.aborted) throw opts.signal.reason;
    problems.push(`${GIT_FSCK} could not run: ${(err as Error).message}`);
  }
  if (t.kind === 'objstore') return problems;
  problems.push(...(await lfsProblems(t.dir)));
  const rec = await state.get(t.path);
  // a failed pull may legitimately have left refs ahead of the recorded fingerprint
  if (rec?.fingerprint && !rec.lastError) {
    try {
      const fp = (await fingerprint(t.dir, t.path)).fingerprint;
      if (fp !== rec.fingerprint)
        problems.push(
          `refs changed behind bundlemirror's back: fingerprint ${fp.slice(0, 12)}, last verified ${rec.fingerprint.slice(0, 12)}`,
        );
    } catch (err) {
      problems.push(`cannot read refs: ${(err as Error).message}`);
    }
  }
  return problems;
}

/**
 * Whether these findings call for cloning the repository again. With
 * `[fsck] reclone_on_errors` set, a git fsck finding does so only when it
 * contains one of its strings; what bundlemirror itself finds (refs moved
 * behind its back) always does.
 */
export function wantsReclone(problems: readonly string[], recloneOn: readonly string[] | null): boolean {
  if (recloneOn === null) return true;
  const patterns = recloneOn.filter((p) => p !== '');
  return problems.some((p) => !p.startsWith(GIT_FSCK) || patterns.some((pat) => p.includes(pat)));
}
