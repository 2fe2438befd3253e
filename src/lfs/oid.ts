/**
 * LFS object ids and where objects live. An oid is the sha256 of the
 * object's bytes; it arrives from clients, pointer files and indexes, so it
 * is checked by rule before it is ever joined into a path.
 */
import { join } from 'node:path';

const OID = /^[0-9a-f]{64}$/;

/** Largest object accepted anywhere (1 TiB, as for bundles). */
export const MAX_LFS_OBJECT_SIZE = 2 ** 40;

export function isLfsOid(value: unknown): value is string {
  return typeof value === 'string' && OID.test(value);
}

export function isLfsSize(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_LFS_OBJECT_SIZE;
}

/** `lfs/objects/ab/cd/abcd...` relative to a repository (or published repository) directory, `/`-separated. */
export function lfsObjectRelPath(oid: string): string {
  if (!isLfsOid(oid)) throw new TypeError(`not an LFS oid: ${JSON.stringify(oid)}`);
  return `lfs/objects/${oid.slice(0, 2)}/${oid.slice(2, 4)}/${oid}`;
}

/** The object's file under a bare repository, as git-lfs itself lays it out. */
export function lfsObjectPath(repoDir: string, oid: string): string {
  return join(repoDir, ...lfsObjectRelPath(oid).split('/'));
}

export function lfsObjectsDir(repoDir: string): string {
  return join(repoDir, 'lfs', 'objects');
}

/** Where uploads are written before they are verified (same filesystem as the objects, so rename is atomic). */
export function lfsTempDir(repoDir: string): string {
  return join(repoDir, 'lfs', 'tmp');
}
