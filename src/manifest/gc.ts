/**
 * Garbage collection of a published tree (an origin's, or the copy a
 * replica serves to the next tier). A bundle file is deleted only
 * after no index of a published repository has referenced it for the whole
 * grace period: a replica that read an older index a moment ago can still
 * download what it names. When each file was first seen unreferenced is
 * kept in `.gc.json` (a dotfile: never served).
 */
import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { dirname, join, posix, relative, sep } from 'node:path';
import * as z from 'zod';
import { writeFileAtomic } from '../fs/atomic.js';
import { readManifestFile } from './manifest.js';
import pLimit from 'p-limit';
import { BUNDLE_LIST_FILE, INDEX_FILE, parseRepoIndex, type RepoIndex } from './repo-index.js';
import { signatureOf } from './signature-files.js';
import { lfsObjectRelPath } from '../lfs/oid.js';
import { diskPathOf, MANIFEST_FILE } from './tree.js';

export const GC_STATE = '.gc.json';
const GcStateSchema = z.record(z.string(), z.number());

export interface GcReport {
  referenced: number;
  waiting: string[];
  deleted: string[];
}

export interface GcOptions {
  graceMs: number;
  now?: number;
  dryRun?: boolean;
  /** Indexes the caller has just written or read, by repository path: not read again. */
  indexes?: ReadonlyMap<string, RepoIndex>;
}

/** Call with the publish lock held (publish does; the gc command takes it). */
export async function collectGarbage(out: string, opts: GcOptions): Promise<GcReport> {
  const now = opts.now ?? Date.now();
  const manifest = await readManifestFile(join(out, MANIFEST_FILE));
  const live = new Set<string>();
  const limit = pLimit(32);
  await Promise.all(
    Object.keys(manifest).map((path) =>
      limit(async () => {
        const dir = diskPathOf(out, path);
        live
          .add(join(dir, INDEX_FILE))
          .add(join(dir, BUNDLE_LIST_FILE))
          .add(signatureOf(join(dir, INDEX_FILE)));
        let index = opts.indexes?.get(path);
        try {
          index ??= parseRepoIndex(await readFile(join(dir, INDEX_FILE)), path);
        } catch {
          return;
        }
        for (const b of index.bundles) {
          if (/^https?:/.test(b.uri)) continue;
          live.add(diskPathOf(out, posix.join(path, b.uri)));
        }
        for (const o of [...(index.lfs?.objects ?? []), ...(index.lfs?.missing ?? [])])
          live.add(join(dir, ...lfsObjectRelPath(o.oid).split('/')));
      }),
    ),
  );
  const state = await readState(out);
  const next: Record<string, number> = {};
  const report: GcReport = { referenced: 0, waiting: [], deleted: [] };
  for (const file of await publishedFiles(out)) {
    if (live.has(file)) {
      report.referenced += 1;
      continue;
    }
    const key = relative(out, file).split(sep).join('/');
    const since = state[key] ?? now;
    if (now - since >= opts.graceMs) {
      report.deleted.push(key);
      if (!opts.dryRun) {
        await rm(file, { force: true });
        await removeEmptyParents(dirname(file), out);
      }
    } else {
      report.waiting.push(key);
      next[key] = since;
    }
  }
  const text = JSON.stringify(next) + '\n';
  if (!opts.dryRun && text !== JSON.stringify(state) + '\n') await writeFileAtomic(join(out, GC_STATE), text);
  return report;
}

async function readState(out: string): Promise<Record<string, number>> {
  try {
    return GcStateSchema.parse(JSON.parse(await readFile(join(out, GC_STATE), 'utf8')));
  } catch {
    return {};
  }
}

const LFS_OBJECT = /(?:^|\/)lfs\/objects\/([0-9a-f]{2})\/([0-9a-f]{2})\/\1\2[0-9a-f]{60}$/;

/** Bundles, indexes, their signatures, bundle lists and LFS objects anywhere in the tree (dotfiles are ours, not published). */
async function publishedFiles(out: string): Promise<string[]> {
  const files: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (
        e.isFile() &&
        (e.name.endsWith('.bundle') ||
          e.name === INDEX_FILE ||
          e.name === BUNDLE_LIST_FILE ||
          e.name === signatureOf(INDEX_FILE) ||
          LFS_OBJECT.test(p.split(sep).join('/')))
      )
        files.push(p);
    }
  }
  await walk(out);
  return files;
}

async function removeEmptyParents(dir: string, stop: string): Promise<void> {
  for (let d = dir; d !== stop && d.startsWith(stop + sep); d = dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty
    }
  }
}
