/**
 * `bundlemirror export`: writes an offline kit (see kit-format.ts) with
 * what a replica needs, from nothing or from a known state:
 *
 * - from nothing (default): per repository the cheapest chain of bundles
 *   that builds it from scratch (a base and its incrementals), exactly what
 *   a first pull would download;
 * - `since` a replica's toplevel directory: the replica's repositories are
 *   asked which objects they have (the same question pull asks), and only
 *   the bundles pull would download go in; repositories whose fingerprint
 *   already matches carry nothing;
 * - `since` a replica's manifest.js.gz: only fingerprints are known, so
 *   unchanged repositories carry nothing and changed ones carry the
 *   from-nothing chain plus every incremental bundle of their index
 *   (whichever point of the chain the replica is at, the import finds a
 *   path).
 *
 * The kit is written to a temp file next to `out` and renamed into place
 * when complete; every bundle is hashed while it is copied and the export
 * fails if one does not match its index. A `<out>.sha256` file (sha256sum
 * format) is written next to it.
 */
import { createHash } from 'node:crypto';
import { hashingTee } from '../fs/hashing-tee.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import { basename, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { BundlemirrorError, forRepo } from '../errors.js';
import { commitFile, tempPathFor, writeFileAtomic } from '../fs/atomic.js';
import { existingObjects, fingerprint } from '../git/repo.js';
import { parseManifest, serializeManifest, type Manifest } from '../manifest/manifest.js';
import {
  isBundleUri,
  serializeRepoIndex,
  type BundleRef,
  type LfsObjectRef,
  type RepoIndex,
} from '../manifest/repo-index.js';
import { lfsObjectRelPath } from '../lfs/oid.js';
import { lfsObjectSize } from '../lfs/store.js';
import { isBareRepository } from '../git/discovery.js';
import { idsToCheck, planBundles } from '../replica/plan/bundle-plan.js';
import { KIT_FORMAT, KIT_JSON, KIT_MANIFEST, KIT_VERSION, kitRepoDir, type Kit, type KitFile } from './kit-format.js';
import type { KitSource } from './kit-source.js';
import { diskPathOf } from '../manifest/tree.js';

export interface ExportOptions {
  source: KitSource;
  /** The kit file to write. */
  out: string;
  /** A replica's toplevel directory or its manifest.js.gz: carry only what it lacks. */
  since?: string | undefined;
  /** Only these manifest paths (default: every repository of the manifest that `select` accepts). */
  repos?: string[] | undefined;
  /** include/exclude of a replica config. */
  select?: ((path: string) => boolean) | undefined;
  log?: ((line: string) => void) | undefined;
  now?: () => Date;
}

export interface ExportReport {
  out: string;
  sha256: string;
  size: number;
  /** Repositories whose index (and bundles) the kit carries. */
  repos: string[];
  /** In the kit's manifest, nothing to carry (the `since` state already has them). */
  unchanged: string[];
  /** Left out of the kit, with the reason. */
  leftOut: { path: string; reason: string }[];
  bundles: number;
  bundleBytes: number;
  /** Git LFS objects carried, and their bytes. */
  lfsObjects: number;
  lfsBytes: number;
}

type Since =
  | { kind: 'nothing'; location: null }
  | { kind: 'manifest'; location: string; manifest: Manifest }
  | { kind: 'toplevel'; location: string };

type RepoPlan =
  | { kind: 'carry'; index: RepoIndex; bundles: BundleRef[]; lfs: LfsObjectRef[] }
  | { kind: 'unchanged' }
  | { kind: 'leave-out'; reason: string };

export async function exportKit(opts: ExportOptions): Promise<ExportReport> {
  const log = opts.log ?? (() => {});
  const since = await loadSince(opts.since);
  const { manifest: full, problems } = parseManifest(await opts.source.manifest(), `${opts.source.location} manifest`);
  for (const p of problems) log(`${p.path}: left out, the manifest entry is refused: ${p.problem}`);
  const paths = selectPaths(full, opts);

  const plans = new Map<string, RepoPlan>();
  for (const path of paths) {
    try {
      plans.set(path, await planRepo(path, full[path]!.fingerprint ?? null, since, opts.source));
    } catch (err) {
      const e = forRepo(err, path);
      plans.set(path, { kind: 'leave-out', reason: e.message });
    }
  }

  const report: ExportReport = {
    out: opts.out,
    sha256: '',
    size: 0,
    repos: [],
    unchanged: [],
    leftOut: [],
    bundles: 0,
    bundleBytes: 0,
    lfsObjects: 0,
    lfsBytes: 0,
  };
  const manifest: Manifest = {};
  const carried: { repo: string; index: RepoIndex; bundles: BundleRef[]; lfs: LfsObjectRef[] }[] = [];
  for (const path of paths) {
    const plan = plans.get(path)!;
    if (plan.kind === 'leave-out') {
      report.leftOut.push({ path, reason: plan.reason });
      log(`${path}: left out: ${plan.reason}`);
      continue;
    }
    manifest[path] = full[path]!;
    if (plan.kind === 'unchanged') report.unchanged.push(path);
    else {
      carried.push({ repo: path, index: plan.index, bundles: plan.bundles, lfs: plan.lfs });
      report.repos.push(path);
    }
  }

  // each bundle once, under the first repository that needs it; others point at it
  const placed = new Map<string, { name: string; repo: string; bundle: BundleRef }>();
  const bundleFiles: { name: string; repo: string; bundle: BundleRef }[] = [];
  const indexes = new Map<string, Buffer>();
  for (const c of carried) {
    const dir = kitRepoDir(c.repo);
    const refs = c.bundles.map((b) => {
      let home = placed.get(b.sha256);
      let uri = home ? posix.relative(dir, home.name) : '';
      if (!home || !isBundleUri(uri)) {
        // first use, or a path the index format cannot express: a copy of its own
        home = { name: `${dir}/${b.sha256}.bundle`, repo: c.repo, bundle: b };
        if (!placed.has(b.sha256)) placed.set(b.sha256, home);
        bundleFiles.push(home);
        uri = `${b.sha256}.bundle`;
      }
      return { ...b, uri };
    });
    const index: RepoIndex = { ...c.index, bundles: refs };
    // the kit's index lists exactly the LFS objects the kit holds for this repository
    delete index.lfs;
    if (c.lfs.length) index.lfs = { objects: c.lfs };
    indexes.set(c.repo, Buffer.from(serializeRepoIndex(index), 'utf8'));
  }
  report.bundles = bundleFiles.length;
  report.bundleBytes = bundleFiles.reduce((n, f) => n + f.bundle.size, 0);
  report.lfsObjects = carried.reduce((n, c) => n + c.lfs.length, 0);
  report.lfsBytes = carried.reduce((n, c) => n + c.lfs.reduce((m, o) => m + o.size, 0), 0);

  const manifestBytes = serializeManifest(manifest);
  const files: KitFile[] = [{ name: KIT_MANIFEST, size: manifestBytes.length, sha256: sha256(manifestBytes) }];
  const order: Piece[] = [{ kind: 'buffer', name: KIT_MANIFEST, bytes: manifestBytes }];
  for (const c of carried) {
    const name = `${kitRepoDir(c.repo)}/index.json`;
    const bytes = indexes.get(c.repo)!;
    files.push({ name, size: bytes.length, sha256: sha256(bytes) });
    order.push({ kind: 'buffer', name, bytes });
    for (const f of bundleFiles.filter((f) => f.repo === c.repo)) {
      files.push({ name: f.name, size: f.bundle.size, sha256: f.bundle.sha256 });
      order.push({
        kind: 'file',
        name: f.name,
        repo: f.repo,
        size: f.bundle.size,
        sha256: f.bundle.sha256,
        label: `bundle ${f.bundle.uri}`,
        locate: () => opts.source.bundleFile(f.repo, f.bundle),
      });
    }
    for (const o of c.lfs) {
      const name = `${kitRepoDir(c.repo)}/${lfsObjectRelPath(o.oid)}`;
      files.push({ name, size: o.size, sha256: o.oid });
      order.push({
        kind: 'file',
        name,
        repo: c.repo,
        size: o.size,
        sha256: o.oid,
        label: `LFS object ${o.oid}`,
        locate: () => opts.source.lfsObjectFile(c.repo, o),
      });
    }
  }
  const created = (opts.now ?? (() => new Date()))();
  const kit: Kit = {
    format: KIT_FORMAT,
    version: KIT_VERSION,
    created: created.toISOString(),
    source: opts.source.location,
    since: { kind: since.kind, location: since.location },
    repos: report.repos,
    files,
  };

  const tmp = tempPathFor(opts.out);
  let ok = false;
  try {
    const written = await writeTar(tmp, created, Buffer.from(JSON.stringify(kit, null, 1) + '\n', 'utf8'), order, log);
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await commitFile(tmp, opts.out);
    await writeFileAtomic(`${opts.out}.sha256`, `${written.sha256}  ${basename(opts.out)}\n`);
    report.sha256 = written.sha256;
    report.size = written.size;
    ok = true;
    return report;
  } finally {
    if (!ok) await rm(tmp, { force: true });
    await opts.source.close(ok);
  }
}

function selectPaths(manifest: Manifest, opts: ExportOptions): string[] {
  const all = Object.keys(manifest).sort();
  if (!opts.repos?.length) return all.filter((p) => !opts.select || opts.select(p));
  for (const r of opts.repos) {
    if (!(r in manifest))
      throw new BundlemirrorError('E_USAGE', `${r} is not in the manifest`, {
        hint: 'name repositories by manifest path, as in /pub/a.git',
      });
  }
  return [...new Set(opts.repos)].sort();
}

async function loadSince(location: string | undefined): Promise<Since> {
  if (location === undefined) return { kind: 'nothing', location: null };
  const st = await stat(location).catch(() => null);
  if (!st)
    throw new BundlemirrorError('E_USAGE', `--since ${location} does not exist`, {
      hint: "pass a replica's toplevel directory or its manifest.js.gz",
    });
  if (st.isDirectory()) return { kind: 'toplevel', location };
  try {
    return { kind: 'manifest', location, manifest: parseManifest(await readFile(location), location).manifest };
  } catch (err) {
    throw new BundlemirrorError(
      'E_USAGE',
      `--since ${location} is neither a directory nor a readable manifest: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

async function planRepo(path: string, want: string | null, since: Since, source: KitSource): Promise<RepoPlan> {
  let replica: string | null = null;
  if (since.kind === 'manifest' && want && since.manifest[path]?.fingerprint === want) return { kind: 'unchanged' };
  if (since.kind === 'toplevel') {
    const dir = diskPathOf(since.location, path);
    if (await isBareRepository(dir)) {
      if (want && (await fingerprint(dir, path)).fingerprint === want) return { kind: 'unchanged' };
      replica = dir;
    }
  }
  const index = await source.index(path);
  if (!index) return { kind: 'leave-out', reason: 'the tree has no index.json for it (an origin without bundles)' };

  if (replica) {
    // the question pull asks, asked of the replica's own repository
    const present = await existingObjects(replica, idsToCheck(index), path);
    const choice = planBundles({ index, present, exists: true, allowBase: true });
    const lfs = await lfsLacking(replica, index);
    if (choice.kind === 'bundles') return { kind: 'carry', index, bundles: choice.bundles, lfs };
    if (choice.kind === 'none') return { kind: 'carry', index, bundles: [], lfs };
  }
  const lfs = index.lfs?.objects ?? [];
  const fresh = planBundles({ index, present: new Set(), exists: false });
  if (fresh.kind === 'none') return { kind: 'carry', index, bundles: [], lfs };
  if (fresh.kind === 'fetch') return { kind: 'leave-out', reason: `no chain of bundles builds it (${fresh.reason})` };
  const bundles = [...fresh.bundles];
  if (since.kind === 'manifest' && since.manifest[path]) {
    // somewhere along the chain, but where is unknown: every incremental, so the import finds its path
    for (const b of index.bundles)
      if (b.prerequisites.length > 0 && !bundles.some((x) => x.sha256 === b.sha256)) bundles.push(b);
    bundles.sort((a, b) => a.creationToken - b.creationToken);
  }
  return { kind: 'carry', index, bundles, lfs };
}

/** The LFS objects an index lists that a replica repository does not hold. */
async function lfsLacking(replica: string, index: RepoIndex): Promise<LfsObjectRef[]> {
  const out: LfsObjectRef[] = [];
  for (const o of index.lfs?.objects ?? []) if ((await lfsObjectSize(replica, o.oid)) !== o.size) out.push(o);
  return out;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A file of the kit: bytes at hand, or a file (bundle, LFS object) found by `locate` and hashed while copied. */
type Piece =
  | { kind: 'buffer'; name: string; bytes: Buffer }
  | {
      kind: 'file';
      name: string;
      repo: string;
      size: number;
      sha256: string;
      label: string;
      locate: () => Promise<string>;
    };

/** Streams kit.json and the pieces into a tar at `file`; returns the tar's sha256 and size. */
async function writeTar(
  file: string,
  mtime: Date,
  kitJson: Buffer,
  pieces: Piece[],
  log: (line: string) => void,
): Promise<{ sha256: string; size: number }> {
  const pack = tar.pack();
  const { stream: counting, result } = hashingTee();
  const written = pipeline(pack, counting, createWriteStream(file));
  written.catch(() => {}); // awaited below; a failure while entries are added surfaces there too
  const header = (name: string, length: number) => ({ name, size: length, mode: 0o644, mtime, type: 'file' as const });
  const addBuffer = (name: string, bytes: Buffer) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(header(name, bytes.length), bytes, (err) => (err ? reject(err) : resolve()));
    });
  try {
    await addBuffer(KIT_JSON, kitJson);
    for (const piece of pieces) {
      if (piece.kind === 'buffer') {
        await addBuffer(piece.name, piece.bytes);
        continue;
      }
      const { repo, label } = piece;
      const src = await piece.locate();
      const st = await stat(src);
      if (st.size !== piece.size) {
        throw new BundlemirrorError('E_BUNDLE_VERIFY', `${label} is ${st.size} bytes, its index says ${piece.size}`, {
          repo,
          hint: 'the published tree is inconsistent: publish again',
        });
      }
      const hash = createHash('sha256');
      let done!: Promise<void>;
      const entry = await new Promise<NodeJS.WritableStream>((resolve) => {
        done = new Promise<void>((ok, fail) => {
          resolve(
            pack.entry(header(piece.name, piece.size), (err) =>
              err ? fail(err) : ok(),
            ) as unknown as NodeJS.WritableStream,
          );
        });
      });
      for await (const chunk of createReadStream(src)) {
        hash.update(chunk as Buffer);
        if (!entry.write(chunk as Buffer)) await new Promise<void>((r) => entry.once('drain', () => r()));
      }
      entry.end();
      await done;
      if (hash.digest('hex') !== piece.sha256) {
        throw new BundlemirrorError('E_BUNDLE_VERIFY', `${label} does not hash to the sha256 its index gives`, {
          repo,
          hint: 'the published file is corrupt: publish again',
        });
      }
      log(`${repo}: ${label} (${piece.size} bytes)`);
    }
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy(err as Error);
    await written.catch(() => {});
    throw err;
  }
  return result();
}
