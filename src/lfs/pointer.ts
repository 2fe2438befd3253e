/**
 * Git LFS pointer files: the small blob git stores in place of a large
 * file. Only the spec's exact shape is accepted (version line first, keys
 * sorted, `oid sha256:<64 hex>`, a decimal size), so a text file that merely
 * mentions LFS is never taken for a pointer.
 */
import { isLfsOid, isLfsSize } from './oid.js';

export interface LfsPointer {
  oid: string;
  size: number;
}

/** Pointer files are smaller than this (the spec's bound); larger blobs are never read as pointers. */
export const MAX_POINTER_SIZE = 1024;

const VERSION_LINE = 'version https://git-lfs.github.com/spec/v1';
const LEGACY_VERSION_LINE = 'version https://hawser.github.com/spec/v1';

export function parsePointer(blob: Buffer | string): LfsPointer | null {
  if (blob.length >= MAX_POINTER_SIZE) return null;
  const text = blob.toString();
  if (!text.endsWith('\n')) return null;
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== VERSION_LINE && lines[0] !== LEGACY_VERSION_LINE) return null;
  let oid: string | null = null;
  let size: number | null = null;
  let previousKey = '';
  for (const line of lines.slice(1)) {
    const m = /^([a-z0-9.-]+) (.*)$/.exec(line);
    if (!m) return null;
    const [, key, value] = m as unknown as [string, string, string];
    if (key <= previousKey) return null;
    previousKey = key;
    if (key === 'oid') {
      const o = /^sha256:(.*)$/.exec(value);
      if (!o || !isLfsOid(o[1])) return null;
      oid = o[1];
    } else if (key === 'size') {
      if (!/^\d{1,16}$/.test(value)) return null;
      const n = Number(value);
      if (!isLfsSize(n)) return null;
      size = n;
    }
  }
  return oid !== null && size !== null ? { oid, size } : null;
}
