/**
 * What one client may cost the daemon's listener, and what its refusals
 * may cost the log. The listener is reachable by anyone who can reach
 * `[bundlemirror] listen`; without these, a loop of bad requests is a loop
 * of WARN lines (a full disk, a log nobody can read) and of work.
 *
 * - Requests: a token bucket per client address (a burst, then a steady
 *   rate); beyond it, 429 with Retry-After.
 * - Failed authentications: a much smaller bucket per address; once it is
 *   empty, that address gets 429 without its token even being looked at,
 *   so guessing the token costs minutes per handful of tries.
 * - WARN lines: the first refusal of a kind in a window is logged as it
 *   happens; the rest are counted and written as one summary line (how
 *   many, from how many addresses, the first few) when the window ends.
 */
export interface ClientLimitOptions {
  /** Requests a client may send at once; default 60. */
  burst?: number;
  /** Requests per second a client may sustain; default 10. */
  perSecond?: number;
  /** Failed authentications a client may have at once; default 10. */
  failureBurst?: number;
  /** Failed authentications per minute a client may sustain; default 6. */
  failuresPerMinute?: number;
  /** Length of a WARN summary window; default 60 s. */
  summaryWindowMs?: number;
}

/** Addresses remembered at once; beyond that, the least recently seen is forgotten. */
const MAX_CLIENTS = 10_000;

class Buckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly capacity: number,
    private readonly perMs: number,
  ) {}

  private current(key: string, now: number): { tokens: number; at: number } {
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.capacity, b.tokens + (now - b.at) * this.perMs) : this.capacity;
    // re-insert so the map's order is least recently seen first
    this.buckets.delete(key);
    const fresh = { tokens, at: now };
    this.buckets.set(key, fresh);
    if (this.buckets.size > MAX_CLIENTS) this.buckets.delete(this.buckets.keys().next().value!);
    return fresh;
  }

  /** True when the key may act now (and pays for it). */
  take(key: string, now = Date.now()): boolean {
    const b = this.current(key, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** True when the key has nothing left, without paying. */
  empty(key: string, now = Date.now()): boolean {
    return this.current(key, now).tokens < 1;
  }

  /** Whole seconds until the key may act again. */
  waitSeconds(key: string, now = Date.now()): number {
    const b = this.current(key, now);
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }
}

export class ClientLimits {
  private readonly requests: Buckets;
  private readonly failures: Buckets;

  constructor(opts: ClientLimitOptions = {}) {
    this.requests = new Buckets(opts.burst ?? 60, (opts.perSecond ?? 10) / 1000);
    this.failures = new Buckets(opts.failureBurst ?? 10, (opts.failuresPerMinute ?? 6) / 60_000);
  }

  /** null when the request may go on; else the seconds to send in Retry-After. */
  admit(client: string): number | null {
    if (this.failures.empty(client)) return this.failures.waitSeconds(client);
    if (!this.requests.take(client)) return this.requests.waitSeconds(client);
    return null;
  }

  /** Records a failed authentication by `client`. */
  failed(client: string): void {
    this.failures.take(client);
  }
}

/** One WARN line per kind and window, then a counted summary. */
export class WarnSummary {
  private readonly windows = new Map<
    string,
    { count: number; addresses: Set<string>; opened: number; timer: NodeJS.Timeout }
  >();
  constructor(
    private readonly warn: (line: string) => void,
    private readonly windowMs = 60_000,
  ) {}

  /** `what` says what was refused ("a notification with a missing or wrong bearer token"). */
  note(what: string, address: string, detail: string): void {
    const open = this.windows.get(what);
    if (open) {
      open.count += 1;
      if (open.addresses.size < 1000) open.addresses.add(address);
      return;
    }
    this.warn(`listener: refused ${what} from ${address}: ${detail}`);
    const timer = setTimeout(() => this.flush(what), this.windowMs);
    timer.unref();
    this.windows.set(what, { count: 0, addresses: new Set(), opened: Date.now(), timer });
  }

  private flush(what: string): void {
    const w = this.windows.get(what);
    if (!w) return;
    this.windows.delete(what);
    clearTimeout(w.timer);
    if (w.count === 0) return;
    const list = [...w.addresses];
    const shown = list.slice(0, 5).join(', ') + (list.length > 5 ? ', ...' : '');
    const seconds = Math.max(1, Math.round((Date.now() - w.opened) / 1000));
    this.warn(
      `listener: refused ${w.count} more of ${what} in the last ${seconds} s, from ${list.length} address(es): ${shown}`,
    );
  }

  /** Writes every pending summary now (the listener is closing). */
  close(): void {
    for (const what of [...this.windows.keys()]) this.flush(what);
  }
}
