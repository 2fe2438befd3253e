/**
 * Multipart upload that resumes: the upload id and each finished part are
 * recorded in the store state as they complete, so a publish killed in the
 * middle of a large bundle sends only the parts still missing. Where the
 * store can list an upload's parts, that list is what counts (a part is
 * kept when its ETag is the one recorded or the MD5 of our bytes); s3rver
 * cannot, and then the recorded parts are trusted.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { ObjectKind, S3Store } from './s3-store.js';
import type { PendingUpload, StoreState } from './store-state.js';

export interface PartsReport {
  /** Bytes sent in parts this run. */
  sent: number;
  /** Parts an earlier, interrupted run had sent and this one kept. */
  kept: number;
}

export async function uploadInParts(
  store: S3Store,
  state: StoreState,
  rel: string,
  key: string,
  file: { path: string; size: number },
  partSize: number,
  kind: ObjectKind,
): Promise<PartsReport> {
  const count = Math.max(1, Math.ceil(file.size / partSize));
  let pending = state.uploads.get(rel);
  if (pending && (pending.size !== file.size || pending.partSize !== partSize)) pending = undefined;
  let kept = pending ? await partsToKeep(store, key, file, pending) : null;
  if (kept === 'gone') {
    pending = undefined;
    kept = null;
  }
  const report: PartsReport = { sent: 0, kept: 0 };
  if (!pending) {
    pending = { uploadId: await store.startUpload(key, kind), size: file.size, partSize, parts: [] };
    await state.recordUpload(rel, pending);
  } else {
    pending = { ...pending, parts: kept ?? [] };
  }
  const done = new Map(pending.parts.map((p) => [p.partNumber, p.etag]));
  report.kept = done.size;
  const fh = await open(file.path, 'r');
  try {
    for (let n = 1; n <= count; n++) {
      if (done.has(n)) continue;
      const body = await readPart(fh, file.size, partSize, n);
      const etag = await store.uploadPart(key, pending.uploadId, n, body);
      report.sent += body.length;
      done.set(n, etag);
      pending = { ...pending, parts: [...pending.parts.filter((p) => p.partNumber !== n), { partNumber: n, etag }] };
      await state.recordUpload(rel, pending);
    }
  } finally {
    await fh.close();
  }
  const parts = [...done].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag }));
  try {
    await store.completeUpload(key, pending.uploadId, parts);
  } catch (err) {
    // the store may have dropped the upload meanwhile (expiry, abort): forget it, the next run starts over
    await state.recordUpload(rel, null);
    throw err;
  }
  await state.recordUpload(rel, null);
  return report;
}

/** Recorded parts the store still holds with our bytes; null when it cannot say, 'gone' without the upload. */
async function partsToKeep(
  store: S3Store,
  key: string,
  file: { path: string; size: number },
  pending: PendingUpload,
): Promise<PendingUpload['parts'] | null | 'gone'> {
  const listed = await store.listParts(key, pending.uploadId);
  if (listed === null) return pending.parts;
  if (listed === 'gone') return 'gone';
  const recorded = new Map(pending.parts.map((p) => [p.partNumber, p.etag]));
  const keep: PendingUpload['parts'] = [];
  const fh = await open(file.path, 'r');
  try {
    for (const p of listed) {
      const body = await readPart(fh, file.size, pending.partSize, p.partNumber);
      if (p.size !== body.length) continue;
      const md5 = `"${createHash('md5').update(body).digest('hex')}"`;
      if (recorded.get(p.partNumber) === p.etag || p.etag === md5)
        keep.push({ partNumber: p.partNumber, etag: p.etag });
    }
  } finally {
    await fh.close();
  }
  return keep;
}

async function readPart(
  fh: import('node:fs/promises').FileHandle,
  size: number,
  partSize: number,
  n: number,
): Promise<Buffer> {
  const start = (n - 1) * partSize;
  const length = Math.max(0, Math.min(partSize, size - start));
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
