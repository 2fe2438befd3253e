/**
 * `file:` URLs in the download door: a published tree on a mounted
 * filesystem (NFS, a shared disk) answers as an HTTP server would (200, 206,
 * 304, 404, 416 with Content-Length, Content-Range and a strong ETag), so
 * resuming from a partial, If-Range, conditional fetches and the size and
 * sha256 checks work exactly as over HTTP.
 *
 * A mounted tree is trusted no more than a server. A path must stay under
 * the tree's root as written (`..` or another absolute path: E_REDIRECT, as
 * a redirect out of the tree is) and as the filesystem resolves it (a
 * symlink leading out: E_SYMLINK); only regular files are read, and a FIFO
 * cannot block the open. The check is made on the file actually opened (its
 * descriptor's path), so swapping a directory for a symlink between check
 * and read gains nothing.
 */
import { constants } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { basename, sep } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BundlemirrorError } from '../errors.js';
import { redactUrl } from '../format/untrusted.js';
import type { OpenedResponse, RedirectRule } from './http.js';

/** Read size for file bodies: large reads keep an NFS mount busy with few round trips. */
const READ_CHUNK = 1 << 20;

/** Bundles are named by their sha256, which is then their ETag, as `serve` sends it. */
const CONTENT_ADDRESSED = /^([0-9a-f]{64})(?:\.bundle)?$/;

/** The directory a `file:` root names, ending in the separator. */
function rootDir(root: string): string | null {
  let u: URL;
  try {
    u = new URL(root);
  } catch {
    return null;
  }
  if (u.protocol !== 'file:') return null;
  const dir = fileURLToPath(u);
  return dir.endsWith(sep) ? dir : dir + sep;
}

function isUnder(path: string, dir: string): boolean {
  return path === dir.slice(0, -1) || path.startsWith(dir);
}

/** The longest `file:` root holding `path` as written, or null. */
function confiningRoot(path: string, rule: RedirectRule): string | null {
  let best: string | null = null;
  for (const r of rule.roots) {
    const dir = rootDir(r);
    if (dir !== null && isUnder(path, dir) && (best === null || dir.length > best.length)) best = dir;
  }
  return best;
}

/** Where an open file really is (Linux: its descriptor's link in /proc), else its resolved path. */
async function openedPath(fh: FileHandle, path: string): Promise<string> {
  try {
    return (await readlink(`/proc/self/fd/${fh.fd}`)).replace(/ \(deleted\)$/, '');
  } catch {
    return realpath(path);
  }
}

function strongEtag(name: string, st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint }): string {
  const ca = CONTENT_ADDRESSED.exec(name);
  if (ca) return `"${ca[1]!}"`;
  return `"${[st.dev, st.ino, st.size, st.mtimeNs].map((n) => n.toString(16)).join('-')}"`;
}

function answer(status: number, headers: IncomingHttpHeaders, body: Readable): OpenedResponse {
  return { status, headers, body };
}

/**
 * Why a `file:` answer is a 404, for the message (failure.ts): the header
 * exists only between this door and its callers, never on a wire.
 */
export const FILE_MISSING_HEADER = 'x-bundlemirror-file-missing';
/** The tree's root, on the same 404s. */
export const FILE_TREE_HEADER = 'x-bundlemirror-tree';
export type FileMissing = 'no-file' | 'not-a-file' | 'no-tree';

function notFound(why: FileMissing, root: string): OpenedResponse {
  return answer(404, { [FILE_MISSING_HEADER]: why, [FILE_TREE_HEADER]: root }, empty());
}

function empty(): Readable {
  return Readable.from([]);
}

/** A single Range this door honours (`bytes=N-`); anything else is answered whole, as servers may. */
function rangeStart(value: string | undefined): number | null {
  const m = value === undefined ? null : /^bytes=(\d+)-$/.exec(value.trim());
  return m ? Number(m[1]) : null;
}

/**
 * Opens a `file:` URL as a response. `rule.roots` names the tree(s) the file
 * must lie in; refusals are thrown as BundlemirrorError (never retried).
 */
export async function openFileResponse(
  url: string,
  rule: RedirectRule,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<OpenedResponse> {
  signal?.throwIfAborted();
  const path = fileURLToPath(url);
  const shown = redactUrl(url);
  const root = confiningRoot(path, rule);
  if (root === null)
    throw new BundlemirrorError(
      'E_REDIRECT',
      `${shown} is outside the published tree (${rule.roots.map(redactUrl).join(' and ')})`,
      {
        repo: rule.repo,
        hint: 'the tree names a file outside itself; this replica reads nothing there. Report it to whoever publishes the tree',
      },
    );
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return notFound((await exists(root)) ? 'no-file' : 'no-tree', root);
    if (code === 'ELOOP') throw symlinkLoop(shown, rule, err);
    throw err;
  }
  let handedOver = false;
  try {
    let realRoot: string;
    try {
      realRoot = await realpath(root);
    } catch {
      return notFound('no-tree', root);
    }
    const real = await openedPath(fh, path);
    if (!isUnder(real, realRoot.endsWith(sep) ? realRoot : realRoot + sep)) throw symlinkOut(shown, root, rule);
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) return notFound('not-a-file', root);
    signal?.throwIfAborted();

    const size = Number(st.size);
    const etag = strongEtag(basename(path), st);
    const base: IncomingHttpHeaders = { etag, 'accept-ranges': 'bytes' };
    const ifNoneMatch = headers['if-none-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch.split(/\s*,\s*/).includes(etag)) return answer(304, base, empty());

    let start = rangeStart(headers['range']);
    const ifRange = headers['if-range'];
    if (start !== null && ifRange !== undefined && ifRange !== etag) start = null;
    if (start !== null && start >= size) return answer(416, { ...base, 'content-range': `bytes */${size}` }, empty());
    const from = start ?? 0;
    const body = fh.createReadStream({ start: from, autoClose: true, highWaterMark: READ_CHUNK });
    handedOver = true;
    if (signal) {
      const onAbort = (): void => {
        body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      body.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    // as over HTTP: errors after the caller stopped listening must not become uncaught exceptions
    body.on('error', () => {});
    const length = { 'content-length': String(size - from) };
    if (start === null) return answer(200, { ...base, ...length }, body);
    return answer(206, { ...base, ...length, 'content-range': `bytes ${from}-${size - 1}/${size}` }, body);
  } finally {
    if (!handedOver) await fh.close().catch(() => {});
  }
}

/** Whether the tree's root is there at all (an unmounted tree makes every file missing). */
async function exists(dir: string): Promise<boolean> {
  try {
    await stat(dir);
    return true;
  } catch {
    return false;
  }
}

/** ELOOP: a symlink cycle (or a chain past the system's limit) inside the tree; where it leads is not said, nor followed. */
function symlinkLoop(shown: string, rule: RedirectRule, cause: unknown): BundlemirrorError {
  return new BundlemirrorError(
    'E_SYMLINK',
    `${shown}: a loop of symlinks in the published tree (or a chain too long to follow)`,
    {
      repo: rule.repo,
      hint: 'this replica reads nothing through it; whoever publishes the tree should replace the symlinks on that path with the files (publish writes no symlinks)',
      cause,
    },
  );
}

function symlinkOut(shown: string, root: string, rule: RedirectRule, cause?: unknown): BundlemirrorError {
  return new BundlemirrorError('E_SYMLINK', `${shown} is a symlink that leads out of the published tree ${root}`, {
    repo: rule.repo,
    hint: 'the tree links to a file outside itself; this replica reads nothing there. Report it to whoever publishes the tree',
    cause,
  });
}
