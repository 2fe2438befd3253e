/**
 * One repository's part of a publish: what it holds now (refs, roots,
 * alternates, read without git when its ref files are as the last publish
 * saw them), and what to write for it: bundles first, then index.json and
 * its bundle-list. The collection-level order (parents before forks, the
 * manifest last) is publish.ts's.
 */
import { readFileSync, statSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { existingObjects, fingerprint, fingerprintOf, formatShowRef, rootCommits, type Ref } from '../git/repo.js';
import type { ManifestEntry } from '../manifest/manifest.js';
import {
  BUNDLE_LIST_FILE,
  INDEX_FILE,
  INDEX_VERSION,
  parseRepoIndex,
  serializeRepoIndex,
  type RepoIndex,
} from '../manifest/repo-index.js';
import { renderBundleList } from '../manifest/bundle-list.js';
import type { FoundRepo } from '../git/discovery.js';
import { lastModified, readOwner } from '../git/inspect.js';
import { readAlternates, readDescription, readHeadFile } from '../git/inspect.js';
import { expireSuperseded, type ChainPolicy } from './chain.js';
import { diskPathOf } from '../manifest/tree.js';
import { needsRebase, writeBundles, type ForkParent, type MadeBundle } from './repo-bundles.js';
import type { Signer } from './signer.js';
import { refsSignature } from '../git/refs-signature.js';
import type { KnownRefs } from './refs-state.js';
import { repoBaseUrl } from './bundle-list-base.js';
import { signatureOf } from '../manifest/signature-files.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { lfsNeedsLook, publishLfsObjects, type LfsPublishResult } from './lfs-publish.js';

export interface PublishedRepo {
  path: string;
  fingerprint: string;
  bundles: MadeBundle[];
}

export interface RepoContext {
  /** The published tree being written. */
  out: string;
  /** URL at which `out` is served; makes bundle-list URIs absolute. */
  baseUrl?: string | null;
  policy: ChainPolicy;
  now: () => number;
  toplevel: string;
  /** Manifest path of a repository directory (for alternates), if it is one of ours. */
  repoPathOf: (dir: string) => Promise<string | undefined>;
  signer: Signer | null;
  /** Runs work that starts git processes, a few at a time. */
  gitLimit: <T>(fn: () => Promise<T>) => Promise<T>;
}

// synchronous: a publish reads the index of every repository of the collection (src/git/refs-signature.ts says why)
export async function readPreviousIndex(file: string, path: string): Promise<RepoIndex | null> {
  try {
    return parseRepoIndex(readFileSync(file), path);
  } catch {
    return null; // missing or unreadable: the next bundle is a base
  }
}

export function indexPathOf(out: string, path: string): string {
  return diskPathOf(out, path, INDEX_FILE);
}

export interface RepoFacts {
  repo: FoundRepo;
  fingerprint: string;
  refs: Ref[];
  prev: RepoIndex | null;
  head: string | null;
  description: string | null;
  /** Manifest paths of repositories whose objects this one borrows. */
  alternates: string[];
  roots: string[];
  /** Signature of the ref files that held `fingerprint`, when settled enough to record. */
  signature: string | null;
}

export async function inspectRepo(
  repo: FoundRepo,
  known: KnownRefs | undefined,
  ctx: RepoContext,
): Promise<RepoFacts | null> {
  // taken before git reads the refs: a change in between makes the recorded signature differ next time
  const sig = await refsSignature(repo.dir);
  const prev = await readPreviousIndex(indexPathOf(ctx.out, repo.path), repo.path);
  const [head, description, alternateDirs] = await Promise.all([
    readHeadFile(repo.dir),
    readDescription(repo.dir),
    readAlternates(repo.dir),
  ]);
  const alternates = (await Promise.all(alternateDirs.map((a) => ctx.repoPathOf(a)))).filter(
    (p): p is string => p !== undefined,
  );
  const signature = sig?.settled ? sig.signature : null;
  // ref files exactly as when the last publish read them: the refs are the ones it published
  const same =
    sig !== null && known?.signature === sig.signature && prev?.fingerprint === known.fingerprint && prev.roots
      ? refsOf(prev)
      : null;
  if (same && fingerprintOf(formatShowRef(same)) === prev!.fingerprint) {
    return {
      repo,
      fingerprint: prev!.fingerprint,
      refs: same,
      prev,
      head,
      description,
      alternates,
      roots: prev!.roots!,
      signature,
    };
  }
  return ctx.gitLimit(async () => {
    const { fingerprint: fp, refs } = await fingerprint(repo.dir, repo.path);
    if (refs.length === 0) return null;
    return {
      repo,
      fingerprint: fp,
      refs,
      prev,
      head,
      description,
      alternates,
      roots: await rootsOf(repo, refs, prev),
      signature,
    };
  });
}

function refsOf(index: RepoIndex): Ref[] {
  return Object.entries(index.refs).map(([name, oid]) => ({ name, oid }));
}

/** Root commits, walking only history added since the last publish when that one recorded its roots. */
async function rootsOf(repo: FoundRepo, refs: Ref[], prev: RepoIndex | null): Promise<string[]> {
  if (prev?.roots && prev.fingerprint === fingerprintOf(formatShowRef(refs))) return prev.roots;
  const tips = [...new Set(refs.map((r) => r.oid))];
  if (!prev?.roots) return rootCommits(repo.dir, tips, [], repo.path);
  const old = [...new Set(Object.values(prev.refs))];
  const known = await existingObjects(repo.dir, old, repo.path);
  const added = await rootCommits(
    repo.dir,
    tips,
    old.filter((o) => known.has(o)),
    repo.path,
  );
  return [...new Set([...prev.roots, ...added])].sort();
}

export async function publishRepo(
  f: RepoFacts,
  prevEntry: ManifestEntry | undefined,
  forkgroup: string | null,
  parent: ForkParent | null,
  ctx: RepoContext,
): Promise<{ entry: ManifestEntry; changed: PublishedRepo | null; lfs: LfsPublishResult | null; index: RepoIndex }> {
  const { repo, prev, head } = f;
  const outDir = diskPathOf(ctx.out, repo.path);
  const reference = f.alternates[0] ?? null;
  const unchanged =
    prev !== null &&
    prev.fingerprint === f.fingerprint &&
    prevEntry?.fingerprint === f.fingerprint &&
    (prev.forkgroup ?? null) === forkgroup &&
    !needsRebase(prev, parent);
  if (unchanged) {
    const owner = configChangedSince(repo.dir, prev.generated)
      ? await readOwner(repo.dir, repo.path)
      : (prevEntry.owner ?? null);
    // superseded bundles whose grace period ended leave the index even when nothing else changed
    const bundles = expireSuperseded(prev.bundles, ctx.now(), ctx.policy);
    // LFS objects first listed by this version, or missing last time, are looked for again
    const lfs = lfsNeedsLook(prev)
      ? await publishLfsObjects(repo.dir, outDir, repo.path, f.refs, prev, lfsStoresOf(f, parent, ctx))
      : null;
    const lfsChanged = lfs !== null && JSON.stringify(lfs.lfs) !== JSON.stringify(prev.lfs);
    let index = prev;
    if (prev.head !== head || !prev.roots || bundles.length !== prev.bundles.length || lfsChanged) {
      index = { ...prev, head, roots: f.roots, bundles, generated: new Date(ctx.now()).toISOString() };
      if (lfs?.lfs) index.lfs = lfs.lfs;
      await writeIndexAndList(outDir, index, ctx, repo.path);
    } else if (ctx.signer && (await ctx.signer.needsSignature(join(outDir, INDEX_FILE)))) {
      // first publish with --sign-key, or a new key: sign the index as it stands
      await ctx.signer.signBeforeWriting(join(outDir, INDEX_FILE), await readFile(join(outDir, INDEX_FILE)));
    }
    return {
      entry: manifestEntry(
        prevEntry.modified ?? 0,
        f.fingerprint,
        head,
        f.description,
        owner,
        reference,
        forkgroup,
        repo.symlinks,
      ),
      changed: null,
      lfs,
      index,
    };
  }

  const nowMs = ctx.now();
  const written = await ctx.gitLimit(() =>
    writeBundles({ repo, outDir, prev, refs: f.refs, nowMs, policy: ctx.policy, parent }),
  );
  const index: RepoIndex = {
    version: INDEX_VERSION,
    path: repo.path,
    generated: new Date(nowMs).toISOString(),
    fingerprint: f.fingerprint,
    head,
    refs: Object.fromEntries(f.refs.map((r) => [r.name, r.oid])),
    bundles: written.bundles,
    forkgroup,
    roots: f.roots,
  };
  // objects before the index that lists them, as bundles are
  const lfs = await publishLfsObjects(repo.dir, outDir, repo.path, f.refs, prev, lfsStoresOf(f, parent, ctx));
  if (lfs.lfs) index.lfs = lfs.lfs;
  await writeIndexAndList(outDir, index, ctx, repo.path);
  const [modified, owner] = await ctx.gitLimit(() =>
    Promise.all([lastModified(repo.dir, repo.path), readOwner(repo.dir, repo.path)]),
  );
  return {
    entry: manifestEntry(modified, f.fingerprint, head, f.description, owner, reference, forkgroup, repo.symlinks),
    changed: { path: repo.path, fingerprint: f.fingerprint, bundles: written.made },
    lfs,
    index,
  };
}

/** Where else a fork's LFS objects may be: its forkgroup parent and the repositories it borrows objects from. */
function lfsStoresOf(f: RepoFacts, parent: ForkParent | null, ctx: RepoContext): string[] {
  const paths = [...(parent ? [parent.path] : []), ...f.alternates].filter((p) => p !== f.repo.path);
  return [...new Set(paths)].map((p) => diskPathOf(ctx.toplevel, p));
}

async function writeIndexAndList(outDir: string, index: RepoIndex, ctx: RepoContext, path: string): Promise<void> {
  const bytes = serializeRepoIndex(index);
  if (ctx.signer) await ctx.signer.signBeforeWriting(join(outDir, INDEX_FILE), bytes);
  else await rm(signatureOf(join(outDir, INDEX_FILE)), { force: true }); // a signature of another index would only be refused
  await writeFileAtomic(join(outDir, INDEX_FILE), bytes);
  await writeFileAtomic(
    join(outDir, BUNDLE_LIST_FILE),
    renderBundleList(index.bundles, repoBaseUrl(ctx.baseUrl, path)),
  );
}

function configChangedSince(dir: string, iso: string): boolean {
  try {
    return statSync(join(dir, 'config')).mtimeMs >= Date.parse(iso);
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
