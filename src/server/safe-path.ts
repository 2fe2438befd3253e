/**
 * From a request path to a file under a root, refusing everything that
 * could reach outside it or into what is private.
 *
 * The URL is checked before decoding (encoded slashes, backslashes and NUL
 * have no business in a published path) and after (no `.`/`..` or dot
 * components, no control characters); the decoded path is then resolved
 * with realpath and must still lie under the root's real path, with no dot
 * component on the way, so a symlink inside the tree cannot lead out of it
 * or onto a dotfile.
 */
import { realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';

export type PathCheck = { ok: true; segments: string[] } | { ok: false; status: 400 | 404; reason: string };

export function splitUrlPath(rawPath: string): PathCheck {
  if (!rawPath.startsWith('/')) return { ok: false, status: 400, reason: 'path must start with "/"' };
  if (rawPath.includes('\\') || /%(2f|5c|00)/i.test(rawPath)) {
    return { ok: false, status: 400, reason: 'encoded slash, backslash or NUL in path' };
  }
  const segments: string[] = [];
  for (const raw of rawPath.slice(1).split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return { ok: false, status: 400, reason: 'malformed percent-encoding' };
    }
    if (/[\x00-\x1f\x7f\\/]/.test(seg))
      return { ok: false, status: 400, reason: 'control character or slash in a path component' };
    if (seg === '.' || seg === '..') return { ok: false, status: 400, reason: 'path traversal' };
    // 404 rather than 403: whether a dotfile or directory exists is not for the client to learn
    if (seg === '') return { ok: false, status: 404, reason: 'empty path component or directory' };
    if (seg.startsWith('.')) return { ok: false, status: 404, reason: 'dotfiles are not served' };
    segments.push(seg);
  }
  return { ok: true, segments };
}

/**
 * The real path of `segments` under `realRoot` (itself already a real
 * path), or null when it does not exist, leaves the root, is the root, or
 * passes through a dot component after symlinks are resolved.
 */
export async function resolveInside(realRoot: string, segments: string[]): Promise<string | null> {
  let real: string;
  try {
    real = await realpath(join(realRoot, ...segments));
  } catch {
    return null;
  }
  const rel = relative(realRoot, real);
  if (rel === '' || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) return null;
  if (rel.split(sep).some((part) => part.startsWith('.'))) return null;
  return real;
}

/** Splits `/a/b?x=y` into its path and query without interpreting either. */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}
