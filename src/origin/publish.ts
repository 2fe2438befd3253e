/**
 * `publish`: turns a toplevel of bare repositories into the static tree a
 * replica reads. Per changed repository: bundles, then index.json, then
 * bundle-list; the manifest last. Each file lands by atomic rename, so a
 * reader never sees a manifest entry whose index or bundles are missing,
 * and a failed repository keeps its previously published files and entry.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { BundlemirrorError, forRepo } from '../errors.js';
import { writeFileAtomic, removeStaleTemps } from '../fsutil.js';
import { acquireLock } from '../lockfile.js';
import { existingObjects, fingerprint, type Ref } from '../git/repo.js';
import { parseManifest, serializeManifest, type Manifest, type ManifestEntry } from '../manifest/manifest.js';
import { BUNDLE_LIST_FILE, INDEX_FILE, INDEX_VERSION, parseRepoIndex, serializeRepoIndex, type BundleRef, type RepoIndex } from '../manifest/repo-index.js';
import { renderBundleList } from '../manifest/bundle-list.js';
import { scanToplevel, manifestPathOf, type FoundRepo } from './scan.js';
import { lastModified, readAlternates, readDescription, readHeadFile, readOwner } from './inspect.js';
import { DEFAULT_CHAIN_POLICY, decideBundle, expireSuperseded, liveChain, nextCreationToken, shouldCollapse, type ChainPolicy } from './chain.js';
import { writeBundle, type WrittenBundle } from './bundle-writer.js';

export const MANIFEST_FILE = 'manifest.js.gz';

export interface PublishOptions {
  toplevel: string;
  out: string;
  /** URL at which `out` is served; makes bundle-list URIs absolute. */
  baseUrl?: string | null;
  /** Manifest paths to leave out (a predicate built from --ignore globs). */
  ignore?: (path: string) => boolean;
  /** Publish only these (disk paths or manifest paths); the rest of the manifest is kept as it was. */
  only?: string[];
  policy?: ChainPolicy;
  concurrency?: number;
  lockWaitMs?: number;
  log?: (line: string) => void;
  now?: () => number;
}

export interface PublishedRepo {
  path: string;
  fingerprint: string;
  bundles: { name: string; size: number; kind: 'base' | 'incremental' }[];
}

export interface PublishReport {
  changed: PublishedRepo[];
  unchanged: string[];
  removed: string[];
  failed: BundlemirrorError[];
  manifestWritten: boolean;
}

export async function publish(opts: PublishOptions): Promise<PublishReport> {
  const log = opts.log ?? (() => {});
  const now = opts.now ?? Date.now;
  const policy = opts.policy ?? DEFAULT_CHAIN_POLICY;
  const found = await scanToplevel(opts.toplevel, opts.ignore);
  const toplevel = await realpath(opts.toplevel);
  const release = await acquireLock(join(opts.out, '.publish'), {
    what: `publish into ${opts.out}`,
    waitMs: opts.lockWaitMs ?? 5 * 60_000,
    onWait: () => log(`waiting for another publish into ${opts.out} to finish`),
  });
  try {
    const prevManifest = await readPreviousManifest(join(opts.out, MANIFEST_FILE), log);
    const selected = opts.only ? await resolveSelection(opts.only, toplevel, found) : found;
    const report: PublishReport = { changed: [], unchanged: [], removed: [], failed: [], manifestWritten: false };
    const next: Manifest = opts.only ? { ...prevManifest } : {};
    const byDir = new Map(found.map((r) => [r.dir, r.path]));
    const limit = pLimit(opts.concurrency ?? 2);

    await Promise.all(
      selected.map((repo) =>
        limit(async () => {
          try {
            const result = await publishRepo(repo, prevManifest[repo.path], { ...opts, policy, now, toplevel, byDir });
            if (result.entry) next[repo.path] = result.entry;
            else delete next[repo.path];
            if (result.changed) report.changed.push(result.changed);
            else if (result.entry) report.unchanged.push(repo.path);
            if (result.changed) log(`${repo.path}: published ${result.changed.bundles.map((b) => `${b.kind} ${b.size} B`).join(', ') || 'refs only'}`);
          } catch (err) {
            const e = forRepo(err, repo.path);
            report.failed.push(e);
            log(`${repo.path}: FAILED: ${e.message}`);
            const prev = prevManifest[repo.path];
            if (prev) next[repo.path] = prev; // its published files are untouched and still valid
          }
        }),
      ),
    );
    if (!opts.only) {
      for (const path of Object.keys(prevManifest)) if (!(path in next)) report.removed.push(path);
    }
    report.changed.sort((a, b) => (a.path < b.path ? -1 : 1));
    report.unchanged.sort();
    report.manifestWritten = await writeManifestIfChanged(join(opts.out, MANIFEST_FILE), next);
    await removeStaleTemps(opts.out);
    return report;
  } finally {
    await release();
  }
}

async function readPreviousManifest(file: string, log: (l: string) => void): Promise<Manifest> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch {
    return {};
  }
  try {
    return parseManifest(bytes, file).manifest;
  } catch (err) {
    log(`previous manifest ${file} is unreadable (${(err as Error).message}); writing a new one`);
    return {};
  }
}

async function resolveSelection(only: string[], toplevel: string, found: FoundRepo[]): Promise<FoundRepo[]> {
  const byPath = new Map(found.map((r) => [r.path, r]));
  const out: FoundRepo[] = [];
  for (const sel of only) {
    let repo = byPath.get(sel);
    if (!repo) {
      try {
        repo = byPath.get(manifestPathOf(toplevel, await realpath(sel)));
      } catch {
        /* not a path on disk */
      }
    }
    if (!repo) {
      throw new BundlemirrorError('E_NOT_FOUND', `${sel} is not a bare repository under ${toplevel}`, {
        hint: 'pass a repository directory inside the toplevel (a hook can pass $PWD) or its manifest path such as /pub/a.git',
      });
    }
    if (!out.includes(repo)) out.push(repo);
  }
  return out;
}

interface RepoContext extends PublishOptions {
  policy: ChainPolicy;
  now: () => number;
  toplevel: string;
  byDir: Map<string, string>;
}

async function readPreviousIndex(file: string, path: string): Promise<RepoIndex | null> {
  try {
    return parseRepoIndex(await readFile(file), path);
  } catch {
    return null; // missing or unreadable: the next bundle is a base
  }
}

async function publishRepo(
  repo: FoundRepo,
  prevEntry: ManifestEntry | undefined,
  ctx: RepoContext,
): Promise<{ entry: ManifestEntry | null; changed: PublishedRepo | null }> {
  const { fingerprint: fp, refs } = await fingerprint(repo.dir, repo.path);
  if (refs.length === 0) return { entry: null, changed: null };
  const outDir = join(ctx.out, ...repo.path.slice(1).split('/'));
  const indexFile = join(outDir, INDEX_FILE);
  const prev = await readPreviousIndex(indexFile, repo.path);
  const head = await readHeadFile(repo.dir);
  const description = await readDescription(repo.dir);
  const alternates = await readAlternates(repo.dir);
  const reference = alternates.map((a) => ctx.byDir.get(a)).find((p) => p !== undefined) ?? null;

  const unchanged = prev !== null && prev.fingerprint === fp && prevEntry?.fingerprint === fp;
  if (unchanged) {
    const owner = (await configChangedSince(repo.dir, prev.generated)) ? await readOwner(repo.dir, repo.path) : (prevEntry.owner ?? null);
    if (prev.head !== head) await writeIndexAndList(outDir, { ...prev, head, generated: new Date(ctx.now()).toISOString() }, ctx, repo.path);
    return { entry: manifestEntry(prevEntry.modified ?? 0, fp, head, description, owner, reference, prevEntry.forkgroup ?? null, repo.symlinks), changed: null };
  }

  const nowMs = ctx.now();
  const written = await writeBundles(repo, outDir, prev, refs, nowMs, ctx);
  const index: RepoIndex = {
    version: INDEX_VERSION,
    path: repo.path,
    generated: new Date(nowMs).toISOString(),
    fingerprint: fp,
    head,
    refs: Object.fromEntries(refs.map((r) => [r.name, r.oid])),
    bundles: written.bundles,
    forkgroup: null,
  };
  await writeIndexAndList(outDir, index, ctx, repo.path);
  const [modified, owner] = await Promise.all([lastModified(repo.dir, repo.path), readOwner(repo.dir, repo.path)]);
  return {
    entry: manifestEntry(modified, fp, head, description, owner, reference, prevEntry?.forkgroup ?? null, repo.symlinks),
    changed: { path: repo.path, fingerprint: fp, bundles: written.made },
  };
}

async function writeBundles(
  repo: FoundRepo,
  outDir: string,
  prev: RepoIndex | null,
  refs: Ref[],
  nowMs: number,
  ctx: RepoContext,
): Promise<{ bundles: BundleRef[]; made: PublishedRepo['bundles'] }> {
  const decision = decideBundle(prev, refs);
  const kept = prev ? expireSuperseded(prev.bundles, nowMs, ctx.policy) : [];
  let token = nextCreationToken(prev, nowMs);
  const made: PublishedRepo['bundles'] = [];
  const entry = (w: WrittenBundle, superseded?: string): BundleRef => ({
    uri: w.name,
    sha256: w.sha256,
    size: w.size,
    creationToken: token++,
    prerequisites: w.header.prerequisites,
    tips: Object.fromEntries(w.header.tips.filter((t) => t.name.startsWith('refs/')).map((t) => [t.name, t.oid])),
    ...(superseded ? { superseded } : {}),
  });

  if (decision.kind === 'none') return { bundles: kept, made };
  if (decision.kind === 'base' || !prev) return writeBase(repo, outDir, kept, nowMs, made, entry);

  // tips of the last publish can be gone (history rewritten, repository recreated): exclude only what still exists
  const present = await existingObjects(repo.dir, decision.prerequisites, repo.path);
  if (present.size === 0) return writeBase(repo, outDir, kept, nowMs, made, entry);
  const inc = await writeBundle(repo.dir, outDir, [...decision.refs, ...decision.prerequisites.filter((p) => present.has(p)).map((p) => `^${p}`)], repo.path);
  if (!inc) return { bundles: kept, made }; // ref moves to objects already published: the new index is enough
  made.push({ name: inc.name, size: inc.size, kind: 'incremental' });
  const chain = liveChain(prev);
  if (!shouldCollapse(chain, inc.size, ctx.policy)) return { bundles: [...kept, entry(inc)], made };

  const stamp = new Date(nowMs).toISOString();
  const oldChain = [...kept.map((b) => (b.superseded ? b : { ...b, superseded: stamp })), entry(inc, stamp)];
  const base = await writeBundle(repo.dir, outDir, 'all', repo.path);
  if (!base) throw new BundlemirrorError('E_GIT', 'git produced no base bundle during collapse', { repo: repo.path });
  made.push({ name: base.name, size: base.size, kind: 'base' });
  return { bundles: [...oldChain, entry(base)], made };
}

async function writeBase(
  repo: FoundRepo,
  outDir: string,
  kept: BundleRef[],
  nowMs: number,
  made: PublishedRepo['bundles'],
  entry: (w: WrittenBundle) => BundleRef,
): Promise<{ bundles: BundleRef[]; made: PublishedRepo['bundles'] }> {
  const base = await writeBundle(repo.dir, outDir, 'all', repo.path);
  if (!base) throw new BundlemirrorError('E_GIT', 'git produced no bundle for a repository with refs', { repo: repo.path });
  made.push({ name: base.name, size: base.size, kind: 'base' });
  const stamp = new Date(nowMs).toISOString();
  // anything still current belonged to a chain that can no longer be extended
  return { bundles: [...kept.map((b) => (b.superseded ? b : { ...b, superseded: stamp })), entry(base)], made };
}

async function writeIndexAndList(outDir: string, index: RepoIndex, ctx: RepoContext, path: string): Promise<void> {
  await writeFileAtomic(join(outDir, INDEX_FILE), serializeRepoIndex(index));
  const base = ctx.baseUrl ? ctx.baseUrl.replace(/\/*$/, '/') + path.slice(1) + '/' : null;
  await writeFileAtomic(join(outDir, BUNDLE_LIST_FILE), renderBundleList(index.bundles, base));
}

async function configChangedSince(dir: string, iso: string): Promise<boolean> {
  try {
    return (await stat(join(dir, 'config'))).mtimeMs >= Date.parse(iso);
  } catch {
    return true;
  }
}

function manifestEntry(
  modified: number,
  fp: string,
  head: string | null,
  description: string | null,
  owner: string | null,
  reference: string | null,
  forkgroup: string | null,
  symlinks: string[],
): ManifestEntry {
  const entry: ManifestEntry = { modified, fingerprint: fp, head, reference };
  if (description !== null) entry.description = description;
  if (owner !== null) entry.owner = owner;
  if (forkgroup) entry.forkgroup = forkgroup;
  if (symlinks.length) entry.symlinks = symlinks;
  return entry;
}

async function writeManifestIfChanged(file: string, manifest: Manifest): Promise<boolean> {
  const bytes = serializeManifest(manifest);
  try {
    if (Buffer.compare(await readFile(file), bytes) === 0) return false;
  } catch {
    /* first publish */
  }
  await writeFileAtomic(file, bytes);
  return true;
}
