/**
 * The daemon's settings in the replica config, which grok-pull ignores:
 *
 *   [bundlemirror]
 *   listen = 127.0.0.1:8090                  ; POST /notify and GET /metrics
 *   notify_token_file = /etc/bundlemirror/notify.token
 *
 *   [schedule "night"]                        ; late mirroring
 *   cron = 0 2 * * *
 *   include = /pub/big/*
 *
 * A repository matched by a schedule's include globs (and selected by
 * [pull] include/exclude) is pulled only at that schedule's times, never
 * on the `[pull] refresh` interval; the first schedule in the file that
 * matches wins.
 */
import { fnmatch } from '../../glob/fnmatch.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface PullSchedule {
  /** The quoted name in `[schedule "NAME"]`. */
  name: string;
  /** Five or six field cron expression, local time. */
  cron: string;
  include: string[];
}

/** `127.0.0.1:8090`, `[::1]:8090`, `localhost:8090`; port 0 picks a free port. Returns a problem string when invalid. */
export function parseListenAddress(value: string): ListenAddress | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(value.trim());
  if (!m) return `must be HOST:PORT (for example 127.0.0.1:8090 or [::1]:8090), got ${JSON.stringify(value)}`;
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  return { host: m[1] ?? m[2]!, port };
}

/** The schedule a manifest path belongs to, or null when the refresh interval pulls it. */
export function scheduleOf(path: string, schedules: readonly PullSchedule[]): PullSchedule | null {
  for (const s of schedules) if (s.include.some((g) => fnmatch(path, g))) return s;
  return null;
}
