/**
 * `publish`: turns a toplevel of bare repositories into the static tree a
 * replica reads. Per changed repository: bundles, then index.json, then
 * bundle-list; the manifest last. Each file lands by atomic rename, so a
 * reader never sees a manifest entry whose index or bundles are missing,
 * and a failed repository keeps its previously published files and entry.
 */
import { rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { repoPathProblem } from '../git/refname.js';
import pLimit from 'p-limit';
import { BundlemirrorError, forRepo } from '../errors.js';
import { removeStaleTemps } from '../fs/atomic.js';
import { lockPublishedTree } from '../manifest/tree-lock.js';
import type { Manifest } from '../manifest/manifest.js';
import type { RepoIndex } from '../manifest/repo-index.js';
import { repoPathOfDir, resolveToplevel, scanToplevel, type FoundRepo } from '../git/discovery.js';
import { DEFAULT_CHAIN_POLICY, type ChainPolicy } from './chain.js';
import { collectGarbage, type GcReport } from '../manifest/gc.js';
import { groupForks, type ForkGroup } from './forkgroups.js';
import { chooseParent, diskPathOf, MANIFEST_FILE } from '../manifest/tree.js';
import { signerFor } from './signer.js';
import { readRefsState, writeRefsState } from './refs-state.js';
import { applyBundleListBase } from './bundle-list-base.js';
import type { LfsObjectRef } from '../manifest/repo-index.js';
import {
  indexPathOf,
  inspectRepo,
  publishRepo,
  readPreviousIndex,
  type PublishedRepo,
  type RepoContext,
  type RepoFacts,
} from './publish-repo.js';
import { readPublishedManifestText, writeManifestIfChanged } from './manifest-writer.js';

export interface PublishOptions {
  toplevel: string;
  out: string;
  /** URL at which `out` is served; makes bundle-list URIs absolute. */
  baseUrl?: string | null;
  /** Manifest paths to leave out (a predicate built from --ignore globs). */
  ignore?: (path: string) => boolean;
  /** Publish only these (disk paths or manifest paths); the rest of the manifest is kept as it was. */
  only?: string[];
  /** Collect garbage even when publishing only some repositories (the on-demand cache, which never runs a full publish). */
  gc?: boolean;
  policy?: ChainPolicy;
  /** SSH private key: sign manifest.js.gz and every index.json (`<file>.sig`), stamp the manifest with the publish time. */
  signKey?: string | null;
  concurrency?: number;
  lockWaitMs?: number;
  log?: (line: string) => void;
  /** What must be said even to a quiet publish (default: log). */
  warn?: (line: string) => void;
  now?: () => number;
  /** Runs under the publish lock once the tree is complete (manifest written, gc done): copies it to an object store. */
  mirror?: () => Promise<void>;
}

export interface LfsReport {
  path: string;
  /** LFS objects this publish added to the tree. */
  added: LfsObjectRef[];
  /** Named by pointers, absent from the origin's store: not published (yet). */
  missing: LfsObjectRef[];
}

export interface PublishReport {
  changed: PublishedRepo[];
  unchanged: string[];
  removed: string[];
  failed: BundlemirrorError[];
  manifestWritten: boolean;
  gc?: GcReport;
  /** Repositories whose LFS objects this publish added or found missing. */
  lfs: LfsReport[];
}

export async function publish(opts: PublishOptions): Promise<PublishReport> {
  const log = opts.log ?? (() => {});
  const now = opts.now ?? Date.now;
  const policy = opts.policy ?? DEFAULT_CHAIN_POLICY;
  const toplevel = await resolveToplevel(opts.toplevel);
  // a hook publishes one repository: no walk over a toplevel of thousands
  const found = opts.only ? null : await scanToplevel(toplevel, opts.ignore);
  // an unusable key stops the publish before anything is written
  const signer = opts.signKey ? await signerFor(opts.signKey) : null;
  const release = await lockPublishedTree(opts.out, { waitMs: opts.lockWaitMs, log });
  try {
    const prevFile = join(opts.out, MANIFEST_FILE);
    const prevRead = await readPublishedManifestText(prevFile, (why) =>
      log(`previous manifest ${prevFile} is unreadable (${why}); writing a new one`),
    );
    const prevManifest = prevRead?.manifest ?? {};
    const selected =
      found ?? (await resolveSelection(opts.only ?? [], toplevel, prevManifest)).filter((r) => !opts.ignore?.(r.path));
    const report: PublishReport = {
      changed: [],
      unchanged: [],
      removed: [],
      failed: [],
      manifestWritten: false,
      lfs: [],
    };
    const next: Manifest = opts.only ? { ...prevManifest } : {};
    const byDir = found ? new Map(found.map((r) => [r.dir, r.path])) : null;
    const repoPathOf = async (dir: string) => (byDir ? byDir.get(dir) : repoPathOfDir(toplevel, dir));
    // git processes at once (both cores); reading files, which most unchanged repositories need alone, goes wider
    const gitLimit = pLimit(opts.concurrency ?? 2);
    const limit = pLimit(32);
    // a hook publish reads and writes its repositories' records alone, not the thousands of others
    const recorded = opts.only ? selected.map((r) => r.path) : undefined;
    const refsBefore = await readRefsState(opts.out, recorded);
    const knownBefore = refsBefore.known;
    const known = new Map(opts.only ? knownBefore : []);
    const ctx: RepoContext = {
      out: opts.out,
      baseUrl: opts.baseUrl,
      policy,
      now,
      toplevel,
      repoPathOf,
      signer,
      gitLimit,
    };
    const fail = (path: string, err: unknown) => {
      known.delete(path);
      const e = forRepo(err, path);
      report.failed.push(e);
      log(`${path}: FAILED: ${e.message}`);
      const prev = prevManifest[path];
      if (prev) next[path] = prev; // its published files are untouched and still valid
    };

    // 1. what each repository holds now
    const facts = new Map<string, RepoFacts>();
    /** Each published repository's index as it now stands on disk (gc reads the others). */
    const indexes = new Map<string, RepoIndex>();
    await Promise.all(
      selected.map((repo) =>
        limit(async () => {
          try {
            known.delete(repo.path);
            const f = await inspectRepo(repo, knownBefore.get(repo.path), ctx);
            if (f) facts.set(repo.path, f);
            else delete next[repo.path]; // no refs: grokmirror leaves it out
          } catch (err) {
            fail(repo.path, err);
          }
        }),
      ),
    );

    // 2. forkgroups: recomputed on a full publish, kept from the manifest when publishing a few repositories
    const groups = opts.only
      ? groupsFromManifest(prevManifest)
      : groupForks(
          [...facts.values()].map((f) => ({
            path: f.repo.path,
            roots: f.roots,
            alternates: f.alternates,
            previous: prevManifest[f.repo.path]?.forkgroup ?? null,
          })),
        );

    // 3. parents (and repositories in no group) first: members build on their parent's fresh index
    const publishOne = async (f: RepoFacts) => {
      try {
        const group = groups.get(f.repo.path) ?? null;
        const parent =
          group && group.parent !== f.repo.path
            ? await readPreviousIndex(indexPathOf(opts.out, group.parent), group.parent)
            : null;
        const forkParent = parent
          ? { path: group!.parent, dir: diskPathOf(toplevel, group!.parent), index: parent }
          : null;
        const result = await publishRepo(f, prevManifest[f.repo.path], group?.id ?? null, forkParent, ctx);
        next[f.repo.path] = result.entry;
        if (result.lfs && (result.lfs.added.length || result.lfs.missing.length)) {
          report.lfs.push({ path: f.repo.path, added: result.lfs.added, missing: result.lfs.missing });
          for (const m of result.lfs.missing)
            log(
              `${f.repo.path}: LFS object ${m.oid} (${m.size} bytes) is not in the origin's lfs/objects; published without it`,
            );
        }
        indexes.set(f.repo.path, result.index);
        if (f.signature) known.set(f.repo.path, { signature: f.signature, fingerprint: f.fingerprint });
        if (result.changed) {
          report.changed.push(result.changed);
          log(
            `${f.repo.path}: published ${result.changed.bundles.map((b) => `${b.kind} ${b.size} B`).join(', ') || 'refs only'}`,
          );
        } else report.unchanged.push(f.repo.path);
      } catch (err) {
        fail(f.repo.path, err);
      }
    };
    const isMember = (f: RepoFacts) => {
      const g = groups.get(f.repo.path);
      return !!g && g.parent !== f.repo.path;
    };
    const all = [...facts.values()];
    await Promise.all(all.filter((f) => !isMember(f)).map((f) => limit(() => publishOne(f))));
    await Promise.all(all.filter(isMember).map((f) => limit(() => publishOne(f))));

    if (!opts.only) {
      for (const path of Object.keys(prevManifest)) if (!(path in next)) report.removed.push(path);
    }
    report.changed.sort((a, b) => (a.path < b.path ? -1 : 1));
    report.lfs.sort((a, b) => (a.path < b.path ? -1 : 1));
    report.unchanged.sort();
    // a new --base-url reaches every bundle-list, not only those this run rewrote
    const rebased = await applyBundleListBase(
      opts.out,
      opts.baseUrl ?? null,
      Object.keys(next),
      new Set(report.changed.map((c) => c.path)),
      indexes,
    );
    if (rebased)
      log(
        `bundle-lists of ${rebased} other repositories rewritten for the base URL ${opts.baseUrl ?? '(none: relative URIs)'}`,
      );
    // a full signed publish always renews the stamp: replicas tell a live origin from a frozen mirror by its age
    report.manifestWritten = await writeManifestIfChanged(join(opts.out, MANIFEST_FILE), next, signer, {
      restamp: !opts.only,
      now: now(),
      warn: opts.warn ?? log,
      // a hook publish changes its repositories' entries alone: the others' JSON is reused as it is
      previous: opts.only ? { read: prevRead, changed: selected.map((r) => r.path) } : undefined,
    });
    await writeRefsState(opts.out, refsBefore, known, recorded);
    // temp files of a publish killed with -9 (half-written bundles can be large) go once their writer is gone
    await removeStaleTemps(opts.out, undefined, { recursive: !opts.only });
    // a hook publish stays quick; full publishes (cron) collect what superseded bundles left behind
    if (!opts.only || opts.gc)
      report.gc = await collectGarbage(opts.out, { graceMs: policy.graceMs, now: now(), indexes });
    await opts.mirror?.();
    return report;
  } finally {
    await release();
  }
}

/** REPO arguments: a directory inside the toplevel (a hook's $PWD) or a manifest path. */
async function resolveSelection(only: string[], toplevel: string, prevManifest: Manifest): Promise<FoundRepo[]> {
  const out: FoundRepo[] = [];
  for (const sel of only) {
    const onDisk = sel.startsWith(toplevel + sep) || !sel.startsWith('/');
    const path = onDisk
      ? await repoPathOfDir(toplevel, sel)
      : repoPathProblem(sel)
        ? undefined
        : await repoPathOfDir(toplevel, join(toplevel, sel));
    const repo: FoundRepo | undefined = path
      ? { path, dir: diskPathOf(toplevel, path), symlinks: prevManifest[path]?.symlinks ?? [] }
      : undefined;
    if (!repo) {
      throw new BundlemirrorError('E_NOT_FOUND', `${sel} is not a bare repository under ${toplevel}`, {
        hint: 'pass a repository directory inside the toplevel (a hook can pass $PWD) or its manifest path such as /pub/a.git',
      });
    }
    if (!out.some((r) => r.path === repo.path)) out.push(repo);
  }
  return out;
}

/** Groups as the last full publish recorded them in the manifest. */
function groupsFromManifest(manifest: Manifest): Map<string, ForkGroup> {
  const byId = new Map<string, string[]>();
  const referencedBy = new Map<string, number>();
  for (const [path, e] of Object.entries(manifest)) {
    if (e.forkgroup) byId.set(e.forkgroup, [...(byId.get(e.forkgroup) ?? []), path]);
    if (e.reference) referencedBy.set(e.reference, (referencedBy.get(e.reference) ?? 0) + 1);
  }
  const groups = new Map<string, ForkGroup>();
  for (const [id, members] of byId) {
    if (members.length < 2) continue;
    const group: ForkGroup = { id, parent: chooseParent(members, referencedBy), members: members.sort() };
    for (const m of members) groups.set(m, group);
  }
  return groups;
}

/**
 * Takes repositories out of a published tree (the on-demand cache evicting
 * a mirror): the manifest entry goes first, so no reader is sent to files
 * that are about to disappear, then the repository's directory.
 */
export async function unpublish(out: string, paths: string[], opts: { lockWaitMs?: number } = {}): Promise<void> {
  const release = await lockPublishedTree(out, { waitMs: opts.lockWaitMs });
  try {
    const previous = await readPublishedManifestText(join(out, MANIFEST_FILE));
    const next = { ...previous?.manifest };
    for (const p of paths) delete next[p];
    await writeManifestIfChanged(join(out, MANIFEST_FILE), next, null, {
      restamp: false,
      now: Date.now(),
      previous: { read: previous, changed: paths },
    });
    for (const p of paths) {
      if (repoPathProblem(p)) continue;
      await rm(diskPathOf(out, p), { recursive: true, force: true });
    }
  } finally {
    await release();
  }
}
