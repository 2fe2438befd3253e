/**
 * What the HTTP and the socket listeners share: the paths, the limits on what
 * one notifier may send, and what they are told by the daemon.
 */
import type { ListenAddress } from './daemon-config.js';
import type { PullLog } from '../log.js';
import type { NotifyResult } from './metrics-daemon.js';
import type { ClientLimitOptions } from './client-limits.js';

export const NOTIFY_PATH = '/notify';

export const METRICS_PATH = '/metrics';

export const MAX_BODY_BYTES = 64 * 1024;

export const MAX_REPOS = 1000;

/** A notifier that has not finished its request by then is cut off. */
export const REQUEST_TIMEOUT_MS = 15_000;

export interface NotifyOutcome {
  /** Queued for a pull now. */
  accepted: string[];
  /** Left alone, with the reason (not selected by include/exclude, pulled on a schedule). */
  ignored: { path: string; reason: string }[];
}

export interface ListenerOptions {
  listen: ListenAddress | null;
  socket: string | null;
  /** `[pull] socket_mode` and `socket_group`: who may write the socket, which takes no token. */
  socketMode?: number;
  socketGroup?: number | null;
  /** The shared secret, read per request so a reload can replace it; null: HTTP notifications are refused. */
  token: () => Buffer | null;
  notify: (paths: string[], source: string) => NotifyOutcome;
  metrics: () => Promise<string>;
  count: (result: NotifyResult) => void;
  log: PullLog;
  /** Per-client request and failed-authentication limits, and the WARN summary window (defaults in client-limits.ts). */
  limits?: ClientLimitOptions | undefined;
}
