/**
 * Several hosts of one published tree (`[remote] mirrors`): the primary
 * (where the manifest URL points) and mirrors, each a URL of the tree's
 * root. A file is the same path under every root, and bundles are named by
 * their sha256, so a partial download started on one host continues on
 * another; the hash decides whether what arrived is right.
 *
 * The set remembers, for one run, how each host did: bytes and time (to
 * prefer the fastest responsive one), failures (a host that fails or stalls
 * rests for a while, longer each time, and the next attempt goes to another
 * at once), and files a host served wrong (forged, stale, truncated: that
 * host is skipped for that file and reported).
 */
import { BundlemirrorError } from '../errors.js';
import { redactUrl } from '../format/untrusted.js';

interface HostRecord {
  root: string;
  bytes: number;
  files: number;
  /** Bytes per second measured over what it sent; 0 while unknown. */
  rate: number;
  failures: number;
  consecutiveFailures: number;
  restingUntil: number;
  lastError: string | null;
}

/** The first rest after a failure; doubled for each failure in a row, up to REST_CAP_MS. */
const REST_MS = 2_000;
const REST_CAP_MS = 60_000;

export interface MirrorChoice {
  root: string;
  url: string;
}

export class MirrorSet {
  private readonly hosts: HostRecord[];
  /** Files (by URL under the primary) a host served wrong: never asked again for them in this run. */
  private readonly refused = new Map<string, Set<string>>();
  readonly servedBy = new Map<string, string>();

  constructor(
    primary: string,
    mirrors: readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    const roots = [primary, ...mirrors].map(withSlash);
    this.hosts = [...new Set(roots)].map((root) => ({
      root,
      bytes: 0,
      files: 0,
      rate: 0,
      failures: 0,
      consecutiveFailures: 0,
      restingUntil: 0,
      lastError: null,
    }));
  }

  get primary(): string {
    return this.hosts[0]!.root;
  }

  get size(): number {
    return this.hosts.length;
  }

  /** The same file under another root; null when `url` is not under the primary's tree. */
  rebase(url: string, root: string): string | null {
    const primary = this.primary;
    if (!url.startsWith(primary)) return null;
    return root + url.slice(primary.length);
  }

  /**
   * Hosts for `url` (a URL under the primary's tree), best first: those not
   * resting before those resting; among them the measured ones by speed,
   * then the others in the order configured (the primary first). Hosts that
   * served this file wrong are left out.
   */
  candidates(url: string): MirrorChoice[] {
    const t = this.now();
    const bad = this.refused.get(url);
    return this.hosts
      .map((h, i) => ({ h, i }))
      .filter(({ h }) => !bad?.has(h.root))
      .sort((a, b) => {
        const ra = a.h.restingUntil > t ? 1 : 0;
        const rb = b.h.restingUntil > t ? 1 : 0;
        if (ra !== rb) return ra - rb;
        if (ra) return a.h.restingUntil - b.h.restingUntil;
        // measured hosts by speed, then the unmeasured in the order configured (the primary first)
        if (a.h.rate !== b.h.rate) return b.h.rate - a.h.rate;
        return a.i - b.i;
      })
      .flatMap(({ h }) => {
        const u = this.rebase(url, h.root);
        return u ? [{ root: h.root, url: u }] : [];
      });
  }

  /** The best host now, or null when every host served this file wrong. */
  choose(url: string): MirrorChoice | null {
    return this.candidates(url)[0] ?? null;
  }

  /** Milliseconds until the best host for `url` stops resting (0: one is ready now). */
  waitFor(url: string): number {
    const best = this.candidates(url)[0];
    if (!best) return 0;
    return Math.max(0, this.host(best.root).restingUntil - this.now());
  }

  delivered(root: string, bytes: number, ms: number): void {
    const h = this.host(root);
    h.bytes += bytes;
    if (bytes > 0) {
      h.consecutiveFailures = 0;
      h.restingUntil = 0;
    }
    if (ms >= 500 && bytes > 0) {
      const rate = (bytes * 1000) / ms;
      h.rate = h.rate === 0 ? rate : (h.rate + rate) / 2;
    }
  }

  fileDone(root: string, repo: string | undefined): void {
    this.host(root).files += 1;
    if (repo) this.servedBy.set(repo, root);
  }

  failed(root: string, message: string): void {
    const h = this.host(root);
    h.failures += 1;
    h.consecutiveFailures += 1;
    h.lastError = message;
    h.restingUntil = this.now() + Math.min(REST_CAP_MS, REST_MS * 2 ** Math.min(h.consecutiveFailures - 1, 10));
  }

  /** This host served `url` wrong (a hash or size that is not the index's, a document its check refused): skip it for that file. */
  servedWrong(url: string, root: string, message: string): void {
    this.failed(root, message);
    let bad = this.refused.get(url);
    if (!bad) this.refused.set(url, (bad = new Set()));
    bad.add(root);
  }

  /** What each host did in this run, for status. */
  report(): { url: string; files: number; bytes: number; failures: number; lastError: string | null }[] {
    return this.hosts.map((h) => ({
      url: redactUrl(h.root),
      files: h.files,
      bytes: h.bytes,
      failures: h.failures,
      lastError: h.lastError,
    }));
  }

  private host(root: string): HostRecord {
    const h = this.hosts.find((x) => x.root === root);
    if (!h) throw new BundlemirrorError('E_HTTP', `${root} is not one of the configured hosts`);
    return h;
  }
}

function withSlash(u: string): string {
  return u.endsWith('/') ? u : `${u}/`;
}
