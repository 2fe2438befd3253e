/**
 * Names that arrive from the network (ref names, object ids, repository
 * paths) are checked here before any of them reaches git or the disk.
 * The ref rules are git's own `check-ref-format` rules, applied in-process
 * because a mirror of thousands of refs cannot afford a git process each.
 */
import { unsafeTextProblem } from '../format/untrusted.js';

const OID = /^[0-9a-f]{40}$/;

export function isObjectId(s: string): boolean {
  return OID.test(s);
}

/**
 * The first 52 bits of the object id written in hex at `at` of `text`, as
 * a number: a Map key that keeps no string alive, for tables of hundreds
 * of thousands of ids. Two ids of n share a key about once in 2^52 / n^2,
 * so it serves only where a wrong match costs time, never correctness.
 */
export function oidKey(text: string, at = 0): number {
  return parseInt(text.slice(at, at + 13), 16);
}

export function refNameProblem(name: string): string | null {
  if (!name.startsWith('refs/')) return 'does not start with refs/';
  if (name.startsWith('-')) return 'starts with "-"';
  if (name.length > 4096) return 'is longer than 4096 characters';
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return 'contains a space, control character or one of ~^:?*[\\';
  if (name.includes('..')) return 'contains ".."';
  if (name.includes('@{')) return 'contains "@{"';
  if (name.endsWith('/') || name.includes('//')) return 'has an empty component';
  if (name.endsWith('.')) return 'ends with "."';
  for (const part of name.split('/')) {
    if (part.startsWith('.')) return 'has a component starting with "."';
    if (part.endsWith('.lock')) return 'has a component ending with ".lock"';
  }
  return null;
}

export function isValidRefName(name: string): boolean {
  return refNameProblem(name) === null;
}

/**
 * Paths made of the usual characters only, each component starting with
 * neither "." nor "-": nothing below can refuse them, so the 10,000 paths of
 * a manifest need one test each instead of five.
 */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9_+=@~%,][A-Za-z0-9._+=@~%,-]*)+$/;

/**
 * A repository path as the manifest spells it: `/a/b.git`. Refused: `..`
 * and `.` components, empty components, control characters, backslashes,
 * components starting with `-` (they could reach git as options) or `.`
 * (our own state lives in `.bundlemirror`).
 */
export function repoPathProblem(p: string): string | null {
  if (typeof p === 'string' && p.length <= 1024 && PLAIN_PATH.test(p)) return null;
  if (typeof p !== 'string' || p.length === 0) return 'is empty';
  if (!p.startsWith('/')) return 'does not start with "/"';
  if (p.length > 1024) return 'is longer than 1024 characters';
  if (/[\x00-\x1f\x7f\\]/.test(p)) return 'contains a control character or backslash';
  // C1 controls, line separators and bidi controls: a path is printed, logged and passed to hooks
  const unsafe = unsafeTextProblem(p);
  if (unsafe) return unsafe;
  const parts = p.slice(1).split('/');
  for (const part of parts) {
    if (part === '') return 'has an empty component';
    if (part === '.' || part === '..') return 'contains "." or ".." components';
    if (part.startsWith('-')) return 'has a component starting with "-"';
    if (part.startsWith('.')) return 'has a component starting with "."';
  }
  return null;
}
