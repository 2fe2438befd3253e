/**
 * Keys whose values need more than the reader's types: lists of mirror URLs,
 * durations, and the permissions and group of the notification socket.
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../../format/duration.js';
import { DEFAULT_RETRY_FOR_MS } from '../../transfer/retry-policy.js';
import type { Reader } from '../../config/reader.js';

export function mirrorRoots(r: Reader, site: string): string[] {
  const words = r
    .list('remote', 'mirrors', [])
    .flatMap((line) => line.split(/\s+/))
    .filter((w) => w !== '');
  return words.map((w) => {
    const u = r.url('remote', 'mirrors', w, site);
    if (!/^https?:/.test(u))
      r.fail('remote', 'mirrors', `must list http:// or https:// URLs of the tree's root, got ${JSON.stringify(w)}`);
    return u.endsWith('/') ? u : `${u}/`;
  });
}

export function retryFor(r: Reader): number {
  const raw = r.str('pull', 'retry_for', '');
  if (raw === '') return DEFAULT_RETRY_FOR_MS;
  const ms = parseDuration(raw);
  if (ms === null || ms <= 0)
    r.fail('pull', 'retry_for', `must be a duration such as 30s, 10m or 1h, got ${JSON.stringify(raw)}`);
  return ms;
}

export function withSlash(u: string): string {
  return u.endsWith('/') ? u : `${u}/`;
}

/** `[pull] socket_mode`: octal permission bits, group-writable by default. */
export function socketMode(r: Reader): number {
  const v = r.str('pull', 'socket_mode', '0660').trim();
  if (!/^0?[0-7]{3}$/.test(v))
    r.fail('pull', 'socket_mode', `must be octal permission bits such as 0660, got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}

/** `[pull] socket_group`: a group name from /etc/group or a numeric gid. */
export function socketGroup(r: Reader): number | null {
  const v = r.str('pull', 'socket_group', '').trim();
  if (v === '') return null;
  if (/^\d+$/.test(v)) return Number(v);
  const gid = gidOf(v);
  if (gid === null)
    r.fail(
      'pull',
      'socket_group',
      `no group ${JSON.stringify(v)} in /etc/group`,
      'name an existing group, or give its numeric gid',
    );
  return gid;
}

function gidOf(name: string): number | null {
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}
