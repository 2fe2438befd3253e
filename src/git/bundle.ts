/**
 * Git bundle headers, read without git. `git bundle verify` does not read
 * the pack (a truncated bundle verifies "okay"), so what a bundle contains is
 * proved by the sha256 and size from index.json; the header tells us what it
 * needs (prerequisites) and what it brings (tips) so the planner can decide
 * without unpacking anything.
 */
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { BundlemirrorError } from '../errors.js';
import { git, GitError } from './exec.js';
import { isObjectId, isValidRefName } from './refname.js';

export interface BundleHeader {
  version: 2 | 3;
  prerequisites: string[];
  tips: { oid: string; name: string }[];
  /** Byte offset of the pack data. */
  packOffset: number;
}

const MAX_HEADER = 64 << 20;

export async function readBundleHeader(file: string): Promise<BundleHeader> {
  const fh = await open(file, 'r');
  try {
    let buf = Buffer.alloc(0);
    let pos = 0;
    const chunk = Buffer.alloc(1 << 16);
    for (;;) {
      const end = buf.indexOf('\n\n');
      if (end >= 0) return parseBundleHeader(buf.subarray(0, end + 2), file);
      if (buf.length > MAX_HEADER) break;
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      buf = Buffer.concat([buf, chunk.subarray(0, bytesRead)]);
    }
    throw new BundlemirrorError('E_BUNDLE_VERIFY', `${file}: not a git bundle (no end of header)`);
  } finally {
    await fh.close();
  }
}

export function parseBundleHeader(header: Buffer, file = 'bundle'): BundleHeader {
  const text = header.toString('utf8');
  const lines = text.split('\n');
  const sig = lines.shift();
  let version: 2 | 3;
  if (sig === '# v2 git bundle') version = 2;
  else if (sig === '# v3 git bundle') version = 3;
  else
    throw new BundlemirrorError(
      'E_BUNDLE_VERIFY',
      `${file}: not a git bundle (signature ${JSON.stringify(sig?.slice(0, 40))})`,
    );
  const prerequisites: string[] = [];
  const tips: { oid: string; name: string }[] = [];
  for (const line of lines) {
    if (line === '') break;
    if (line.startsWith('@')) {
      if (version === 3 && (line === '@object-format=sha1' || line.startsWith('@filter='))) continue;
      throw new BundlemirrorError('E_BUNDLE_VERIFY', `${file}: unsupported bundle capability ${line}`);
    }
    if (line.startsWith('-')) {
      const oid = line.slice(1, 41);
      if (!isObjectId(oid)) throw new BundlemirrorError('E_BUNDLE_VERIFY', `${file}: bad prerequisite line`);
      prerequisites.push(oid);
      continue;
    }
    const sp = line.indexOf(' ');
    const oid = line.slice(0, sp);
    const name = line.slice(sp + 1);
    if (sp !== 40 || !isObjectId(oid) || !(isValidRefName(name) || name === 'HEAD')) {
      throw new BundlemirrorError('E_BUNDLE_VERIFY', `${file}: bad ref line ${JSON.stringify(line.slice(0, 80))}`);
    }
    tips.push({ oid, name });
  }
  return { version, prerequisites, tips, packOffset: header.length };
}

/** What git prints when the revisions bring no new objects. */
const EMPTY_BUNDLE = /Refusing to create empty bundle/;

/**
 * Streams `git bundle create` into `out`: every ref (`'all'`, a base
 * bundle), or the lines of `revs` (ref names to include, `^oid` for
 * prerequisites). Resolves false when git finds nothing new to bundle.
 */
export async function createBundle(
  gitDir: string,
  revs: 'all' | string[],
  out: Writable,
  opts: { repo: string; env?: Record<string, string> },
): Promise<boolean> {
  const args =
    revs === 'all' ? ['bundle', 'create', '--quiet', '-', '--all'] : ['bundle', 'create', '--quiet', '-', '--stdin'];
  try {
    await git(args, {
      gitDir,
      repo: opts.repo,
      env: opts.env,
      stdout: out,
      input: revs === 'all' ? undefined : revs.join('\n') + '\n',
    });
    return true;
  } catch (err) {
    if (err instanceof GitError && EMPTY_BUNDLE.test(err.stderr)) return false;
    throw err;
  }
}
