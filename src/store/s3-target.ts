/**
 * An object-store target, `s3://BUCKET/PREFIX`, and the local directory that
 * holds the published tree between runs. The store is a mirror of that
 * tree: publish writes it exactly as for a directory target (bundles,
 * indexes, manifest, the dotfiles that remember chains, ref state and gc
 * times), then copies what changed into the bucket in publish order. No run
 * ever lists the bucket to learn what it holds.
 */
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { BundlemirrorError } from '../errors.js';

export interface StoreTarget {
  /** `s3://bucket/prefix` as given, normalised (no trailing slash). */
  url: string;
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
}

export function isStoreUrl(where: string): boolean {
  return /^s3:\/\//i.test(where);
}

// S3's rules for new buckets, loosened to what S3-compatible stores also accept (dots, 3-63 characters)
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseStoreUrl(where: string): StoreTarget {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(where);
  const bucket = m?.[1] ?? '';
  const prefix = (m?.[2] ?? '').replace(/\/+$/, '');
  const usage = (why: string) =>
    new BundlemirrorError('E_USAGE', `${JSON.stringify(where)} is not a usable store URL: ${why}`, {
      hint: 'write s3://BUCKET or s3://BUCKET/PREFIX, e.g. s3://mirrors/git',
    });
  if (!BUCKET.test(bucket)) throw usage('the bucket name must be 3-63 lowercase letters, digits, dots or dashes');
  const parts = prefix === '' ? [] : prefix.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || /[\x00-\x1f\x7f\\]/.test(p)))
    throw usage('the prefix must be plain path segments (no empty, . or .. segment, no control characters)');
  return { url: `s3://${bucket}${prefix ? '/' + prefix : ''}`, bucket, prefix };
}

/** The object key of a path relative to the published tree's root. */
export function keyOf(target: StoreTarget, rel: string): string {
  return target.prefix ? `${target.prefix}/${rel}` : rel;
}

/**
 * `--state DIR` when given; otherwise one directory per store URL under the
 * user's state directory (XDG_STATE_HOME, else ~/.local/state).
 */
export function stateDirFor(target: StoreTarget, given?: string): string {
  if (given) return resolve(given);
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  const id = createHash('sha256').update(target.url).digest('hex').slice(0, 12);
  return join(base, 'bundlemirror', 'publish', `${target.bucket}-${id}`);
}
