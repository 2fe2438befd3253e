/**
 * A large base published as a short chain of history slices (`publish
 * --slices N`): slice 0 is a base of the oldest part of the main line,
 * slice k holds what slice k-1's cut commit lacks up to the next cut, the
 * last holds everything else. Listed in creationToken order, it is an
 * ordinary chain to stock `git clone --bundle-uri` and to the replica's
 * planner; a replica that indexes each slice as it arrives resolves slice
 * k's deltas while slice k+1 downloads, instead of resolving the whole
 * base after its last byte.
 *
 * What it costs: a slice's pack is thin (git deltifies against the
 * prerequisite's objects where it can), but deltas whose base lies in an
 * older slice other than through the cut commit are lost; the bench reports
 * the bytes against one base. Bitmaps are turned off for these bundles:
 * with a bitmap, git 2.39 builds the pack from the bitmap walk and makes no
 * delta against the prerequisite's trees at all (measured: a one-commit
 * slice of 29.6 KB instead of 1.5 KB).
 *
 * Cut commits are chosen on the first-parent line of HEAD (else of the
 * first branch) by commit count. The bundles of slices 0..N-2 need a ref for
 * `git bundle create` to name: they are built in a throwaway repository
 * beside the output that borrows the origin's objects (an alternates file)
 * and holds one ref per cut, `refs/slices/<k>`, so the origin repository
 * itself is never written to.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { firstParentLine, storedBytes } from '../git/history.js';
import { headObject, initBare, readHead, updateRefs, type Ref } from '../git/repo.js';
import { MAX_SLICES } from '../manifest/repo-index.js';
import { writeBundle, type WrittenBundle } from './bundle-writer.js';

export interface SlicePolicy {
  /** Slices per base; below 2 a base is one bundle. */
  slices: number;
  /** A repository storing fewer bytes than this gets one base whatever `slices` says. */
  sliceMinBytes: number;
}

export const DEFAULT_SLICE_MIN_BYTES = 16 << 20;
/** Fewest main-line commits per slice: shorter slices cost more in lost deltas than they win. */
const MIN_COMMITS_PER_SLICE = 50;
/** `pack.useBitmaps=false` for one git command (see above). */
const NO_BITMAPS = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'pack.useBitmaps', GIT_CONFIG_VALUE_0: 'false' };

/** The cut commits (oldest first) that split `line` into `count` runs of about equal length; none when too short. */
function chooseCuts(line: readonly string[], count: number): string[] {
  const n = Math.min(Math.floor(count), MAX_SLICES);
  if (n < 2 || line.length < n * MIN_COMMITS_PER_SLICE) return [];
  const cuts: string[] = [];
  for (let k = 1; k < n; k++) cuts.push(line[Math.floor((line.length * k) / n) - 1]!);
  return cuts;
}

/** The commit the main line ends at: HEAD's, else the first branch's (HEAD unborn), else nothing to cut. */
function mainTip(refs: readonly Ref[], head: string | null): string | null {
  return headObject(refs, head) ?? refs.find((r) => r.name.startsWith('refs/heads/'))?.oid ?? null;
}

/**
 * Writes the slices of a base for `refs`, oldest first, or returns null
 * when the repository is too small or too short to slice (the caller then
 * writes one base).
 */
export async function writeSlices(
  gitDir: string,
  outDir: string,
  refs: readonly Ref[],
  policy: SlicePolicy,
  repo: string,
): Promise<WrittenBundle[] | null> {
  if (policy.slices < 2 || refs.length === 0) return null;
  if ((await storedBytes(gitDir, repo)) < policy.sliceMinBytes) return null;
  const tip = mainTip(refs, await readHead(gitDir, repo));
  if (!tip) return null;
  const cuts = chooseCuts(await firstParentLine(gitDir, tip, repo), policy.slices);
  if (cuts.length === 0) return null;

  await mkdir(outDir, { recursive: true });
  const aside = join(outDir, `.slices-${randomBytes(6).toString('hex')}.git`);
  try {
    await initBare(aside, repo);
    await writeFile(join(aside, 'objects', 'info', 'alternates'), `${join(gitDir, 'objects')}\n`);
    await updateRefs(
      aside,
      cuts.map((oid, k) => ({ name: `refs/slices/${k + 1}`, oid })),
      repo,
    );
    const written: WrittenBundle[] = [];
    for (const [k] of cuts.entries()) {
      const revs = [`refs/slices/${k + 1}`, ...(k > 0 ? [`^${cuts[k - 1]}`] : [])];
      const b = await writeBundle(aside, outDir, revs, repo, NO_BITMAPS);
      if (!b) return null;
      written.push(b);
    }
    const last = await writeBundle(gitDir, outDir, [...refs.map((r) => r.name), `^${cuts.at(-1)}`], repo, NO_BITMAPS);
    if (!last) return null;
    written.push(last);
    return written;
  } finally {
    await rm(aside, { recursive: true, force: true });
  }
}
