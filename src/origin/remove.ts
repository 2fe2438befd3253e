/**
 * `publish -x PATH...` (grok-manifest's `-x`): takes repositories deleted
 * from the toplevel out of the manifest at once (from the hook or command
 * that deleted them), without walking the toplevel or republishing anything
 * else. Their index.json, bundle-list and bundles are then named by nothing,
 * and gc deletes them after the grace period like superseded bundles, so a
 * replica that read the previous manifest a moment ago still finishes its
 * downloads. Replicas purge the repository (with purge on) or stop updating
 * it at their next pull.
 *
 * Everything is checked before anything is written: a path the manifest
 * does not list, or one that is still a repository on disk (the next full
 * publish would only add it back), stops the whole command.
 */
import { lstat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { lockPublishedTree } from '../manifest/tree-lock.js';
import { isBareRepository, resolveToplevel } from '../git/discovery.js';
import { repoPathProblem } from '../git/refname.js';
import type { Manifest } from '../manifest/manifest.js';
import { diskPathOf, MANIFEST_FILE } from '../manifest/tree.js';
import { readPublishedManifest, writeManifestIfChanged } from './manifest-writer.js';
import { readRefsState, writeRefsState } from './refs-state.js';
import { signerFor } from './signer.js';

export interface RemoveOptions {
  toplevel: string;
  out: string;
  /** Disk paths (inside the toplevel, absolute or relative to the working directory) or manifest paths. */
  paths: string[];
  /** Remove even a repository that is still on disk. */
  force?: boolean;
  /** The key publish signs with: the shorter manifest must be signed as the longer one was. */
  signKey?: string | null;
  lockWaitMs?: number;
  /** Copies the tree to where it is served from (an s3:// target), as publish does. */
  mirror?: () => Promise<void>;
  log?: (line: string) => void;
  /** What must be said even to a quiet run (default: log). */
  warn?: (line: string) => void;
  now?: () => number;
}

export interface RemoveReport {
  /** Manifest entries taken out. */
  removed: string[];
  /** Symlink names taken out of the entries of their target. */
  symlinks: string[];
  /** Entries that named a removed repository as their `reference`, now without one. */
  unreferenced: string[];
  manifestWritten: boolean;
}

export async function removeFromManifest(opts: RemoveOptions): Promise<RemoveReport> {
  const log = opts.log ?? (() => {});
  const now = opts.now ?? Date.now;
  const toplevel = await resolveToplevel(opts.toplevel);
  const given = resolve(opts.toplevel);
  const wanted = [...new Set(opts.paths.map((p) => manifestPathFor(p, toplevel, given)))];
  const signer = opts.signKey ? await signerFor(opts.signKey) : null;
  const release = await lockPublishedTree(opts.out, { waitMs: opts.lockWaitMs, log });
  try {
    const file = join(opts.out, MANIFEST_FILE);
    let why = 'it does not exist';
    const read = await readPublishedManifest(file, (w) => (why = w));
    // without a manifest every path would look unpublished: say what is wrong with the manifest instead
    if (!read)
      throw new BundlemirrorError(
        'E_MANIFEST',
        `cannot take ${wanted.join(', ')} out of ${file}: ${why}; nothing was removed`,
        {
          repo: wanted.length === 1 ? wanted[0] : undefined,
          hint: `check --out (or [publish] out) names the published tree; a full publish writes ${file} anew`,
        },
      );
    const manifest: Manifest = { ...read };
    const report: RemoveReport = { removed: [], symlinks: [], unreferenced: [], manifestWritten: false };
    const aliasOf = new Map<string, string>();
    for (const [path, e] of Object.entries(manifest)) for (const s of e.symlinks ?? []) aliasOf.set(s, path);

    for (const path of wanted) {
      if (!(path in manifest) && !aliasOf.has(path))
        throw new BundlemirrorError('E_NOT_FOUND', `not in the manifest ${file}; nothing was removed`, {
          repo: path,
          hint: `name it by its path under the toplevel (such as /pub/a.git) or its directory in ${toplevel}; zcat ${file} lists what is published`,
        });
      const dir = diskPathOf(toplevel, path);
      if (!opts.force && (await stillThere(dir, path in manifest)))
        throw new BundlemirrorError('E_REPO_EXISTS', `is still at ${dir}; nothing was removed`, {
          repo: path,
          hint: 'delete it first (the next full publish would publish it again), or pass --force to take it out of the manifest until then',
        });
    }

    for (const path of wanted) {
      const target = aliasOf.get(path);
      if (!(path in manifest) && target && manifest[target]) {
        const symlinks = (manifest[target].symlinks ?? []).filter((s) => s !== path);
        manifest[target] = { ...manifest[target], symlinks };
        if (symlinks.length === 0) delete manifest[target].symlinks;
        report.symlinks.push(path);
        log(`${path}: symlink to ${target} removed from the manifest`);
        continue;
      }
      delete manifest[path];
      report.removed.push(path);
      log(`${path}: removed from the manifest; its files go at gc after the grace period`);
    }
    // grokmirror replicas would look for objects in a repository that is gone
    for (const [path, e] of Object.entries(manifest)) {
      if (e.reference && report.removed.includes(e.reference)) {
        manifest[path] = { ...e, reference: null };
        report.unreferenced.push(path);
        log(`${path}: no longer names ${e.reference} as its reference`);
      }
    }
    report.manifestWritten = await writeManifestIfChanged(file, manifest, signer, {
      restamp: false,
      now: now(),
      warn: opts.warn ?? log,
    });
    // a repository created again under the same path starts from git show-ref, not from these ref files
    const known = await readRefsState(opts.out, report.removed);
    await writeRefsState(opts.out, known, new Map(), report.removed);
    await opts.mirror?.();
    return report;
  } finally {
    await release();
  }
}

/** A disk path inside the toplevel (absolute, or relative to the working directory) or a manifest path. */
function manifestPathFor(arg: string, toplevel: string, given: string): string {
  const trimmed = arg.length > 1 ? arg.replace(/\/+$/, '') : arg;
  let path: string | undefined;
  for (const top of [toplevel, given]) {
    const abs = trimmed.startsWith('/') ? trimmed : resolve(trimmed);
    if (abs.startsWith(top + sep)) path = '/' + relative(top, abs).split(sep).join('/');
    if (path) break;
  }
  if (!path && trimmed.startsWith('/')) path = trimmed;
  const problem = path ? repoPathProblem(path) : 'it is outside the toplevel';
  if (!path || problem)
    throw new BundlemirrorError('E_USAGE', `${JSON.stringify(arg)} cannot be a repository of ${toplevel}: ${problem}`, {
      hint: 'pass the directory of the deleted repository inside the toplevel, or its manifest path such as /pub/a.git',
    });
  return path;
}

/** A repository still on disk; for a symlink name, the link itself. */
async function stillThere(dir: string, isRepository: boolean): Promise<boolean> {
  if (isRepository) return isBareRepository(dir);
  return lstat(dir).then(
    () => true,
    () => false,
  );
}
