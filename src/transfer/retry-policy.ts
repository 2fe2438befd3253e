/**
 * How long downloads keep trying a failing server, and what they say while
 * they wait. No HTTP here, so config and status can import it cheaply.
 */
import type { FailureCause } from './failure.js';

/** Long enough to ride out a server restart or a short outage, short enough that a dead origin is reported within minutes. */
export const DEFAULT_RETRY_FOR_MS = 5 * 60_000;

/** A download or document fetch waiting before its next attempt. */
export interface RetryWait {
  url: string;
  cause: FailureCause | undefined;
  /** The last error, for logs. */
  message: string;
  delayMs: number;
  /** Consecutive attempts without progress so far. */
  attempt: number;
  /** When it gives up if nothing arrives (ms since the epoch). */
  giveUpAt: number;
}
