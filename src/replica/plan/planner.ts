/**
 * What a pull should do, decided without touching git, disk or network:
 * a pure function from (remote manifest, local state, config, options) to
 * a list of actions, one per repository, sorted by path.
 *
 * The rules (each has a test in test/planner.test.ts):
 *
 * Selection. A manifest path is selected when it matches an `include` glob
 * and no `exclude` glob (Python fnmatch: `*` crosses `/`). Paths that are
 * not selected are never touched: not cloned, updated, or purged, even if
 * they are on disk (grokmirror would purge an excluded repository; we keep
 * it, because an exclude is more often "leave that alone" than "delete it").
 *
 * For a selected manifest entry:
 * - not on disk: `clone`;
 * - on disk: `update` when --force, when there is no recorded state, when
 *   the last attempt failed, when the recorded fingerprint is null or
 *   differs from the manifest's, or when the manifest has no fingerprint
 *   (we cannot prove it unchanged; grok-pull skips such entries instead);
 * - otherwise `metadata` when head, description, owner (both sides
 *   defaulting to `default_owner`) or symlinks differ from what was
 *   recorded, else `skip`, which costs nothing.
 *
 * Purge: a selected repository on disk that is in neither the manifest nor
 * any selected entry's symlinks is a candidate, unless it matches
 * `nopurge` or `ffonly`. Nothing is purged when purge is off (the
 * candidates are reported as `stale`). A candidate that a kept repository
 * borrows objects from (alternates) is kept and reported. If what remains
 * is `purgeprotect` percent of the repositories on disk or more, nothing is
 * purged and `purgeBlocked` explains, unless --force-purge.
 */
import type { Manifest, ManifestEntry } from '../../manifest/manifest.js';
import type { PullConfig } from '../config/config.js';
import { firstMatch } from '../../glob/fnmatch.js';
import type { RepoState } from '../state-file.js';

export interface LocalState {
  /** Recorded state per manifest path (StateStore.all()). */
  repos: Readonly<Record<string, RepoState>>;
  /**
   * Bare repositories found under the toplevel, as manifest paths
   * (`/pub/a.git`): real directories only, not symlinks, nothing under
   * `.bundlemirror/`.
   */
  onDisk: ReadonlySet<string>;
  /** For a repository on disk: the manifest paths of the repositories whose objects it borrows (objects/info/alternates). */
  alternates: Readonly<Record<string, readonly string[]>>;
  /** The replica's last written manifest: metadata fallback for repositories whose state lacks it. */
  localManifest?: Manifest;
}

/** The part of PullConfig the planner reads (a whole PullConfig fits). */
export interface PlanConfig {
  pull: Pick<PullConfig['pull'], 'include' | 'exclude' | 'nopurge' | 'ffonly' | 'purgeprotect' | 'defaultOwner'>;
}

export interface PlanOptions {
  /** --force: update every selected repository on disk even when it looks current. */
  force: boolean;
  /** Purge enabled: config `purge` (or -p) and not --no-purge. */
  purge: boolean;
  /** --force-purge: ignore purgeprotect. */
  forcePurge: boolean;
}

export interface SyncInput {
  remote: Manifest;
  local: LocalState;
  config: PlanConfig;
  options: PlanOptions;
  /**
   * When the manifest was read as an edit of the one the last complete run
   * settled (src/manifest/manifest-edit.ts): the entries that changed. Any
   * other entry is as it was then, when it was verified with its metadata,
   * so one still recorded at its fingerprint without a failure is skipped
   * without comparing its metadata.
   */
  changed?: ReadonlySet<string>;
}

export type MetadataField = 'head' | 'description' | 'owner' | 'symlinks';

export type UpdateWhy =
  'forced' | 'no-state' | 'failed-last-run' | 'unverified' | 'no-remote-fingerprint' | 'fingerprint-changed';

export type SyncAction =
  | { kind: 'clone'; path: string; entry: ManifestEntry; reason: string }
  | {
      kind: 'update';
      path: string;
      entry: ManifestEntry;
      why: UpdateWhy;
      reason: string;
      /** Metadata that also differs from what was recorded (apply it after the refs). */
      metadata: MetadataField[];
    }
  | { kind: 'metadata'; path: string; entry: ManifestEntry; fields: MetadataField[]; reason: string }
  | { kind: 'purge'; path: string; reason: string }
  | { kind: 'skip'; path: string; reason: string };

export type SyncActionKind = SyncAction['kind'];
/** An action with work to do: a skip is only counted. */
export type WorkAction = Exclude<SyncAction, { kind: 'skip' }>;

export interface PlanProblem {
  path: string;
  problem: string;
}

export interface PurgeBlocked {
  /** Repositories that would have been purged. */
  paths: string[];
  count: number;
  /** Repositories on disk. */
  total: number;
  /** floor(count * 100 / total), as grok-pull computes it. */
  percent: number;
  /** purgeprotect. */
  limit: number;
  message: string;
}

export interface SyncPlan {
  /** One per selected manifest entry and per purged repository, sorted by path. */
  actions: SyncAction[];
  problems: PlanProblem[];
  purgeBlocked?: PurgeBlocked;
  /** Manifest entries left alone by include/exclude, with the reason (for verbose logs). */
  filtered: { path: string; reason: string }[];
  /** Purge candidates not purged because purge is off. */
  stale: string[];
  /** State entries for repositories neither on disk nor in the selected manifest: safe to drop. */
  forget: string[];
  summary: Record<SyncActionKind, number> & { filtered: number; problems: number; total: number };
  /**
   * Entries left out of `actions` because they are unchanged and in sync
   * since the settled manifest (settled-scope.ts); counted in summary.skip.
   */
  settled?: number;
}

export function planSync(input: SyncInput): SyncPlan {
  const { remote, local, options } = input;
  const cfg = input.config.pull;
  const actions: SyncAction[] = [];
  const problems: PlanProblem[] = [];
  const filtered: { path: string; reason: string }[] = [];

  const selected = new Set<string>();
  const symlinkPaths = new Set<string>();
  for (const path of sortedKeys(remote)) {
    const why = notSelected(path, cfg);
    if (why) {
      filtered.push({ path, reason: why });
      continue;
    }
    selected.add(path);
    for (const s of remote[path]!.symlinks ?? []) symlinkPaths.add(s);
  }

  for (const path of selected) {
    const entry = remote[path]!;
    if (!local.onDisk.has(path)) {
      actions.push({ kind: 'clone', path, entry, reason: 'in the manifest, not on disk' });
      continue;
    }
    const state = local.repos[path];
    if (input.changed?.has(path) === false && !options.force && settledCurrent(entry, state)) {
      actions.push({ kind: 'skip', path, reason: SETTLED });
      continue;
    }
    const fields = metadataDiff(entry, state, local.localManifest?.[path], cfg.defaultOwner);
    const update = updateReason(entry, state, options.force);
    if (update) {
      actions.push({ kind: 'update', path, entry, why: update.why, reason: update.reason, metadata: fields });
    } else if (fields.length > 0) {
      actions.push({ kind: 'metadata', path, entry, fields, reason: `refs current; ${fields.join(', ')} changed` });
    } else {
      actions.push({
        kind: 'skip',
        path,
        reason: `fingerprint ${short(entry.fingerprint)} matches and metadata is unchanged`,
      });
    }
  }

  // Purge candidates: selected repositories on disk that the manifest no longer has.
  const candidates: string[] = [];
  // the manifest's own repositories first (nearly all of them): only what is left needs sorting
  const unlisted = [...local.onDisk].filter((p) => !selected.has(p) && !symlinkPaths.has(p)).sort(compare);
  for (const path of unlisted) {
    if (notSelected(path, cfg)) continue; // outside what this config manages
    if (firstMatch(path, cfg.nopurge)) continue;
    const ff = firstMatch(path, cfg.ffonly);
    if (ff) {
      if (options.purge)
        problems.push({
          path,
          problem: `not in the manifest, but never purged: it matches ffonly glob ${JSON.stringify(ff)}`,
        });
      continue;
    }
    candidates.push(path);
  }

  let stale: string[] = [];
  let purgeBlocked: PurgeBlocked | undefined;
  if (!options.purge) {
    stale = candidates;
  } else if (candidates.length > 0) {
    const purge = new Set(candidates);
    // Keep anything a kept repository borrows objects from; repeat, since keeping one may keep what it borrows from.
    let changed = true;
    while (changed) {
      changed = false;
      for (const repo of local.onDisk) {
        if (purge.has(repo)) continue;
        for (const lender of local.alternates[repo] ?? []) {
          if (purge.delete(lender)) {
            problems.push({
              path: lender,
              problem: `not in the manifest, but kept: ${repo} borrows objects from it (alternates)`,
            });
            changed = true;
          }
        }
      }
    }
    const paths = [...purge].sort(compare);
    const total = local.onDisk.size;
    const percent = total > 0 ? Math.floor((paths.length * 100) / total) : 0;
    if (paths.length > 0 && !options.forcePurge && percent >= cfg.purgeprotect) {
      purgeBlocked = {
        paths,
        count: paths.length,
        total,
        percent,
        limit: cfg.purgeprotect,
        message:
          `refusing to purge ${paths.length} of ${total} repositories (${percent}%, purgeprotect is ${cfg.purgeprotect}%): ` +
          'the manifest may be truncated or wrong. If the origin really removed them, run again with --force-purge, or raise purgeprotect',
      };
    } else {
      for (const path of paths) actions.push({ kind: 'purge', path, reason: 'on disk, no longer in the manifest' });
    }
  }

  const forget = Object.keys(local.repos)
    .filter((p) => !local.onDisk.has(p) && !selected.has(p))
    .sort(compare);

  actions.sort((a, b) => compare(a.path, b.path));
  problems.sort((a, b) => compare(a.path, b.path));
  const summary = {
    clone: 0,
    update: 0,
    metadata: 0,
    purge: 0,
    skip: 0,
    filtered: filtered.length,
    problems: problems.length,
    total: actions.length,
  };
  for (const a of actions) summary[a.kind] += 1;
  const plan: SyncPlan = { actions, problems, filtered, stale, forget, summary };
  if (purgeBlocked) plan.purgeBlocked = purgeBlocked;
  return plan;
}

const SETTLED = 'unchanged since the manifest the last complete run settled';

/**
 * An entry untouched since the manifest the last complete run settled
 * (SyncInput.changed): it was verified then with its metadata, so a state
 * still at its fingerprint, without a failure since, says it is current.
 */
export function settledCurrent(entry: ManifestEntry, state: RepoState | undefined): boolean {
  return !!state && !state.lastError && !!entry.fingerprint && state.fingerprint === entry.fingerprint;
}

/** Why include/exclude leave a path alone, or null when it is selected. */
export function notSelected(path: string, cfg: Pick<PlanConfig['pull'], 'include' | 'exclude'>): string | null {
  if (!firstMatch(path, cfg.include)) return cfg.include.length === 0 ? 'include is empty' : 'matches no include glob';
  const ex = firstMatch(path, cfg.exclude);
  return ex === undefined ? null : `matches exclude glob ${JSON.stringify(ex)}`;
}

function updateReason(
  entry: ManifestEntry,
  state: RepoState | undefined,
  force: boolean,
): { why: UpdateWhy; reason: string } | null {
  if (force) return { why: 'forced', reason: '--force' };
  if (!state) return { why: 'no-state', reason: 'on disk but never verified by this replica' };
  if (state.lastError)
    return {
      why: 'failed-last-run',
      reason: `retrying: last attempt failed (${state.lastError.code}: ${state.lastError.message})`,
    };
  if (!entry.fingerprint)
    return {
      why: 'no-remote-fingerprint',
      reason: 'the manifest has no fingerprint for it, so it cannot be shown current',
    };
  if (!state.fingerprint) return { why: 'unverified', reason: 'no verified fingerprint recorded' };
  if (state.fingerprint !== entry.fingerprint) {
    return {
      why: 'fingerprint-changed',
      reason: `fingerprint ${short(state.fingerprint)} -> ${short(entry.fingerprint)}`,
    };
  }
  return null;
}

/** Fields whose manifest value differs from what was recorded (state first, then our last manifest). */
export function metadataDiff(
  entry: ManifestEntry,
  state: RepoState | undefined,
  previous: ManifestEntry | undefined,
  defaultOwner: string,
): MetadataField[] {
  const pick = <K extends 'head' | 'description' | 'owner'>(k: K): string | null | undefined =>
    state?.[k] !== undefined ? state[k] : previous?.[k];
  const fields: MetadataField[] = [];
  if ((entry.head ?? null) !== (pick('head') ?? null)) fields.push('head');
  if ((entry.description ?? null) !== (pick('description') ?? null)) fields.push('description');
  if ((entry.owner ?? defaultOwner) !== (pick('owner') ?? defaultOwner)) fields.push('owner');
  const wanted = entry.symlinks ?? [];
  const had = state?.symlinks ?? previous?.symlinks ?? [];
  // most repositories have none: no copies to sort for them
  if (wanted.length !== had.length) fields.push('symlinks');
  else if (wanted.length > 0) {
    const want = [...wanted].sort(compare);
    const have = [...had].sort(compare);
    if (want.some((s, i) => s !== have[i])) fields.push('symlinks');
  }
  return fields;
}

function sortedKeys(m: Manifest): string[] {
  return Object.keys(m).sort(compare);
}

/** Code-unit order: the same on every machine and locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function short(fp: string | null | undefined): string {
  return fp ? fp.slice(0, 12) : '(none)';
}
