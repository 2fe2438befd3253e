/**
 * The replica's own books of what it holds: which repositories are on disk (for
 * the planner) and its local manifest (grokmirror format), written after a run
 * from what was verified.
 *
 * Which repositories are on disk is asked only where the answer can change the
 * plan. A repository whose recorded state says it was verified at exactly the
 * manifest's fingerprint and metadata, with no failure since, would be skipped:
 * it is taken to be on disk without a look (10,000 looks cost a poll 0.1-0.15 s).
 * Everything else (a changed or new entry, a failure, no or partial state, a
 * recorded repository gone from the manifest) is looked at, and --force, -n,
 * purge (which walks the toplevel) look at all. A repository deleted by hand
 * behind our back is therefore noticed when its entry next changes, by such a
 * run, and by `status` and `fsck`, which look at every repository.
 */
import { readManifestIfAny, writeManifestFile, type Manifest } from '../manifest/manifest.js';
import { repoPathProblem } from '../git/refname.js';
import { isBareRepository, scanToplevel } from '../git/discovery.js';
import { readAlternates } from '../git/inspect.js';
import type { PullConfig } from './config/config.js';
import { metadataDiff, settledCurrent, type SyncPlan } from './plan/planner.js';
import type { RepoState } from './state-file.js';
import { diskPathOf, manifestPathOf } from '../manifest/tree.js';
import { unstampManifest } from '../manifest/manifest-stamp.js';
import { writeFileAtomic } from '../fs/atomic.js';

/** Recorded state that leaves a metadata field to the local manifest (the planner's fallback). */
const leavesFieldsOut = (s: RepoState | undefined) =>
  !s || s.head === undefined || s.description === undefined || s.owner === undefined || s.symlinks === undefined;

/** A recorded state the planner would skip: verified at this entry's fingerprint and all its metadata, no failure since. */
function recordedCurrent(entry: Manifest[string], state: RepoState | undefined, defaultOwner: string): boolean {
  if (
    !state ||
    leavesFieldsOut(state) ||
    state.lastError ||
    !entry.fingerprint ||
    state.fingerprint !== entry.fingerprint
  )
    return false;
  return metadataDiff(entry, state, undefined, defaultOwner).length === 0;
}

/** What is on disk, without walking the whole toplevel unless purge needs it. */
export async function localState(
  config: PullConfig,
  remote: Manifest,
  recorded: Readonly<Record<string, RepoState>>,
  opts: {
    purge: boolean;
    lookAtAll: boolean;
    /** The entries that changed, when the manifest was read as an edit of the settled one. */
    changed?: ReadonlySet<string>;
  },
) {
  const toplevel = config.core.toplevel;
  const onDisk = new Set<string>();
  const alternates: Record<string, string[]> = {};
  if (opts.purge) {
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
    const look: string[] = [];
    const { changed } = opts;
    for (const p in remote) {
      const current =
        changed?.has(p) === false
          ? settledCurrent(remote[p]!, recorded[p])
          : recordedCurrent(remote[p]!, recorded[p], config.pull.defaultOwner);
      if (!opts.lookAtAll && current) onDisk.add(p);
      else look.push(p);
    }
    for (const p in recorded) if (!Object.hasOwn(remote, p)) look.push(p);
    for (const p of look) {
      if (repoPathProblem(p)) continue;
      if (await isBareRepository(diskPathOf(toplevel, p))) onDisk.add(p);
    }
  }
  // the local manifest is the planner's fallback for metadata the state leaves out: read it only then
  let localManifest: Manifest | undefined;
  for (const p of opts.changed ?? Object.keys(remote)) {
    if (Object.hasOwn(remote, p) && leavesFieldsOut(recorded[p])) {
      localManifest = (await readManifestIfAny(config.core.manifest)) ?? undefined;
      break;
    }
  }
  return { repos: recorded, onDisk, alternates, localManifest };
}

/**
 * The replica's own manifest (grokmirror format): what this replica holds,
 * verified. When that is every entry of the remote manifest, and the remote
 * manifest's bytes held nothing that was refused, those bytes are written
 * as they came (without the origin's publish stamp): the same collection,
 * without serialising and packing 10,000 entries again.
 */
export async function writeLocalManifest(
  config: PullConfig,
  remote: { manifest: Manifest; bytes: Buffer; refused: boolean },
  plan: SyncPlan,
  failed: Set<string | undefined>,
  inScope: ((path: string) => boolean) | null,
  /** The local manifest as the run found it (read once, only when a failure or a partial run needs its entries). */
  previous: () => Promise<Manifest>,
): Promise<Manifest> {
  const anyFailed = plan.actions.some((a) => failed.has(a.path));
  const bytesFit = !inScope && !anyFailed && !remote.refused && plan.filtered.length === 0;
  // a plan that left the settled entries out, and acted on the rest: every entry is in sync
  const next =
    plan.settled && bytesFit
      ? remote.manifest
      : await entriesInSync(remote.manifest, plan, failed, inScope, anyFailed, previous);
  const whole =
    bytesFit && (next === remote.manifest || Object.keys(next).length === Object.keys(remote.manifest).length);
  const gzip = remote.bytes[0] === 0x1f && remote.bytes[1] === 0x8b;
  if (whole && gzip === config.core.manifest.endsWith('.gz'))
    await writeFileAtomic(config.core.manifest, gzip ? unstampManifest(remote.bytes) : remote.bytes);
  else await writeManifestFile(config.core.manifest, next);
  return next;
}

/** The entries the replica holds in sync after a run: the manifest's where it acted, the previous ones where it failed or did not look. */
async function entriesInSync(
  manifest: Manifest,
  plan: SyncPlan,
  failed: Set<string | undefined>,
  inScope: ((path: string) => boolean) | null,
  anyFailed: boolean,
  previous: () => Promise<Manifest>,
): Promise<Manifest> {
  const next: Manifest = {};
  const before = inScope || anyFailed ? await previous() : {};
  if (inScope) for (const [p, e] of Object.entries(before)) if (!inScope(p)) next[p] = e;
  // entries the plan left out as settled are in sync: the manifest's own, as the plan's skips would be
  if (plan.settled) Object.assign(next, manifest);
  for (const a of plan.actions) {
    if (a.kind === 'purge') continue;
    if (failed.has(a.path)) {
      if (before[a.path]) next[a.path] = before[a.path]!;
      else delete next[a.path];
      continue;
    }
    if (manifest[a.path]) next[a.path] = manifest[a.path]!;
  }
  if (plan.settled) for (const f of plan.filtered) delete next[f.path];
  return next;
}
