/**
 * Copies a published tree into an object store in publish order: bundles
 * and LFS objects (content-addressed, immutable), then every index.json,
 * every bundle-list, the signatures, the manifest's signature and last the
 * manifest, then deletes what gc removed from the tree. Each step waits for
 * the one before, so a replica reading the store (or a CDN in front of it)
 * never meets a manifest whose indexes, or an index whose bundles, are not
 * there yet. Only what changed since the last run is sent: a content-
 * addressed object recorded in the store state is never sent again, and
 * one the state does not know is looked up (HEAD) first.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { BUNDLE_LIST_FILE, INDEX_FILE } from '../manifest/repo-index.js';
import { MANIFEST_FILE } from '../manifest/tree.js';
import { signatureOf } from '../manifest/signature-files.js';
import type { ObjectKind, S3Store } from './s3-store.js';
import { keyOf } from './s3-target.js';
import { StoreState } from './store-state.js';
import { uploadInParts } from './multipart.js';

export const DEFAULT_PART_SIZE = 64 << 20;

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';
const CONTENT_ADDRESSED =
  /(?:^|\/)[0-9a-f]{64}\.bundle$|(?:^|\/)lfs\/objects\/([0-9a-f]{2})\/([0-9a-f]{2})\/\1\2[0-9a-f]{60}$/;

export interface MirrorOptions {
  /** Files above this size go up in parts of this size (S3 wants at least 5 MiB per part but the last). */
  partSize?: number;
  concurrency?: number;
  log?: (line: string) => void;
}

export interface MirrorReport {
  uploaded: number;
  uploadedBytes: number;
  /** Parts of interrupted multipart uploads that were not sent again. */
  keptParts: number;
  unchanged: number;
  deleted: number;
}

interface TreeFile {
  rel: string;
  path: string;
  size: number;
  mtimeMs: number;
}

/** The order objects reach the store in; the manifest is the last document, deletions come after it. */
function phaseOf(rel: string): number {
  if (CONTENT_ADDRESSED.test(rel)) return 0;
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  if (rel === MANIFEST_FILE) return 5;
  if (rel === signatureOf(MANIFEST_FILE)) return 4;
  if (name === INDEX_FILE) return 1;
  if (name === BUNDLE_LIST_FILE) return 2;
  return 3;
}

function kindOf(rel: string): ObjectKind {
  if (CONTENT_ADDRESSED.test(rel)) return { contentType: 'application/octet-stream', cacheControl: IMMUTABLE };
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  // application/gzip and no Content-Encoding: clients must store the .gz as it is, not inflate it
  if (rel === MANIFEST_FILE) return { contentType: 'application/gzip', cacheControl: REVALIDATE };
  if (name === INDEX_FILE) return { contentType: 'application/json', cacheControl: REVALIDATE };
  if (name === BUNDLE_LIST_FILE || name.endsWith('.sig'))
    return { contentType: 'text/plain; charset=utf-8', cacheControl: REVALIDATE };
  return { contentType: 'application/octet-stream', cacheControl: REVALIDATE };
}

/** Call with the publish lock of `tree` held. */
export async function mirrorTree(tree: string, store: S3Store, opts: MirrorOptions = {}): Promise<MirrorReport> {
  const log = opts.log ?? (() => {});
  const partSize = opts.partSize ?? DEFAULT_PART_SIZE;
  const limit = pLimit(opts.concurrency ?? 8);
  const state = await StoreState.load(tree, store.target.url);
  await store.checkBucket();
  const files = await treeFiles(tree);
  const report: MirrorReport = { uploaded: 0, uploadedBytes: 0, keptParts: 0, unchanged: 0, deleted: 0 };

  const upload = async (f: TreeFile) => {
    const key = keyOf(store.target, f.rel);
    const kind = kindOf(f.rel);
    if (phaseOf(f.rel) === 0) {
      if (state.objects.get(f.rel)?.size === f.size) return void report.unchanged++;
      // not in the state (a lost state directory, a run killed before it recorded the upload): ask the store
      if ((await store.head(key)) === f.size) {
        await state.record(f.rel, { size: f.size });
        // killed between completing a multipart upload and recording it: nothing is left to resume
        if (state.uploads.has(f.rel)) await state.recordUpload(f.rel, null);
        return void report.unchanged++;
      }
      if (f.size > partSize) {
        const parts = await uploadInParts(store, state, f.rel, key, f, partSize, kind);
        report.uploadedBytes += parts.sent;
        report.keptParts += parts.kept;
      } else {
        await store.put(key, { file: f.path, size: f.size }, kind);
        report.uploadedBytes += f.size;
      }
      report.uploaded++;
      await state.record(f.rel, { size: f.size });
      return;
    }
    const known = state.objects.get(f.rel);
    if (known?.size === f.size && known.mtimeMs === f.mtimeMs) return void report.unchanged++;
    const bytes = await readFile(f.path);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const now = { size: bytes.length, mtimeMs: f.mtimeMs, sha256 };
    if (known?.sha256 === sha256) {
      state.touch(f.rel, now);
      return void report.unchanged++;
    }
    await store.put(key, bytes, kind);
    report.uploaded++;
    report.uploadedBytes += bytes.length;
    await state.record(f.rel, now);
  };

  try {
    for (let phase = 0; phase <= 5; phase++) {
      const batch = files.filter((f) => phaseOf(f.rel) === phase);
      await Promise.all(batch.map((f) => limit(() => upload(f))));
    }
    // what gc deleted from the tree (past its grace period), now that no document names it
    const present = new Set(files.map((f) => f.rel));
    const gone = [...state.objects.keys()].filter((rel) => !present.has(rel));
    await Promise.all(
      gone.map((rel) =>
        limit(async () => {
          await store.delete(keyOf(store.target, rel));
          await state.record(rel, null);
          report.deleted++;
        }),
      ),
    );
    for (const rel of [...state.uploads.keys()]) if (!present.has(rel)) await state.recordUpload(rel, null);
  } finally {
    await state.save();
  }
  log(
    `${store.target.url}: ${report.uploaded} object(s) uploaded (${report.uploadedBytes} B${report.keptParts ? `, ${report.keptParts} part(s) kept from an interrupted upload` : ''}), ${report.unchanged} unchanged, ${report.deleted} deleted`,
  );
  return report;
}

/** Every published file of the tree; dotfiles (locks, state, temp files) are ours and stay local. */
async function treeFiles(tree: string): Promise<TreeFile[]> {
  const out: TreeFile[] = [];
  // many small directories (one per repository): read and stat a few dozen at once
  const limit = pLimit(32);
  async function walk(dir: string, rel: string): Promise<void> {
    const entries = await limit(() => readdir(dir, { withFileTypes: true }));
    await Promise.all(
      entries
        .filter((e) => !e.name.startsWith('.'))
        .map(async (e) => {
          const path = join(dir, e.name);
          const r = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory()) return walk(path, r);
          if (!e.isFile()) return;
          const st = await limit(() => stat(path));
          out.push({ rel: r, path, size: st.size, mtimeMs: st.mtimeMs });
        }),
    );
  }
  await walk(tree, '');
  return out;
}
