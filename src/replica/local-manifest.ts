/**
 * The replica's own books of what it holds: which repositories are on disk (for
 * the planner) and its local manifest (grokmirror format), written after a run
 * from what was verified.
 */
import { readManifestIfAny, writeManifestFile, type Manifest } from '../manifest/manifest.js';
import { repoPathProblem } from '../git/refname.js';
import { isBareRepository, scanToplevel } from '../git/discovery.js';
import { readAlternates } from '../git/inspect.js';
import type { PullConfig } from './config/config.js';
import type { SyncPlan } from './plan/planner.js';
import { diskPathOf, manifestPathOf } from '../manifest/tree.js';

/** What is on disk, without walking the whole toplevel unless purge needs it. */
export async function localState(
  config: PullConfig,
  remote: Manifest,
  recorded: Record<string, unknown>,
  purge: boolean,
) {
  const toplevel = config.core.toplevel;
  const onDisk = new Set<string>();
  const alternates: Record<string, string[]> = {};
  if (purge) {
    // forkgroup stores live under the toplevel by default (grokmirror's layout) and are not mirrors
    const stores = manifestPathOf(toplevel, config.core.objstore);
    const found = await scanToplevel(toplevel, (p) => p === stores || p.startsWith(stores + '/'));
    const byDir = new Map(found.map((f) => [f.dir, f.path]));
    for (const f of found) {
      onDisk.add(f.path);
      const alt = (await readAlternates(f.dir)).map((d) => byDir.get(d)).filter((p): p is string => !!p);
      if (alt.length) alternates[f.path] = alt;
    }
  } else {
    const paths = new Set([...Object.keys(remote), ...Object.keys(recorded)]);
    await Promise.all(
      [...paths].map(async (p) => {
        if (repoPathProblem(p)) return;
        if (await isBareRepository(diskPathOf(toplevel, p))) onDisk.add(p);
      }),
    );
  }
  const localManifest = (await readManifestIfAny(config.core.manifest)) ?? undefined;
  return { repos: recorded as never, onDisk, alternates, localManifest };
}

/** The replica's own manifest (grokmirror format): what this replica holds, verified. */
export async function writeLocalManifest(
  config: PullConfig,
  remote: Manifest,
  plan: SyncPlan,
  failed: Set<string | undefined>,
  inScope: ((path: string) => boolean) | null,
  /** The local manifest as the run found it (localState's read). */
  previous: Manifest,
): Promise<Manifest> {
  const next: Manifest = {};
  if (inScope) for (const [p, e] of Object.entries(previous)) if (!inScope(p)) next[p] = e;
  for (const a of plan.actions) {
    if (a.kind === 'purge') continue;
    if (failed.has(a.path)) {
      if (previous[a.path]) next[a.path] = previous[a.path]!;
      continue;
    }
    if (remote[a.path]) next[a.path] = remote[a.path]!;
  }
  await writeManifestFile(config.core.manifest, next);
  return next;
}
