/**
 * One repository's health as `fsck` sees it: `git fsck` findings, corrupt
 * LFS objects, and refs that differ from what pull last verified.
 */
import { fingerprint } from '../../git/repo.js';
import { fsckFull } from '../../git/maintenance.js';
import type { StateStore } from '../state.js';
import type { Target } from './fsck-targets.js';
import { lfsProblems } from './fsck-lfs.js';

/** What is wrong with one repository: git fsck findings, and refs that differ from what pull last verified. */
export async function checkTarget(t: Target, state: StateStore, signal?: AbortSignal): Promise<string[]> {
  const problems: string[] = [];
  try {
    const result = await fsckFull(t.dir, t.path, { signal });
    if (!result.ok) problems.push(...result.problems.map((p) => `git fsck: ${p}`));
  } catch (err) {
    problems.push(`git fsck could not run: ${(err as Error).message}`);
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
