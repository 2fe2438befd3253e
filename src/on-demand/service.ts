/**
 * The on-demand bundle service: a URL in, a published mirror out. One job
 * per mirror, shared by every request for it; a bounded number run at once
 * (the rest wait as `queued`). A job clones (or, for a mirror older than the
 * TTL, fetches), then publishes with the ordinary publish code, so a refresh
 * becomes an incremental bundle on top of what clients already have.
 *
 * Limits: a clone that grows past `maxRepoBytes` is stopped and leaves
 * nothing behind; after each job the cache is trimmed to `maxCacheBytes` by
 * evicting the least recently requested mirrors.
 */
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError, isBundlemirrorError } from '../errors.js';
import { exists as pathExists } from '../fs/atomic.js';
import { printable } from '../format/untrusted.js';
import type { UpstreamProgress } from '../git/upstream.js';
import { currentBundles, INDEX_FILE, parseRepoIndex } from '../manifest/repo-index.js';
import { publish, unpublish } from '../origin/publish.js';
import {
  cacheLayout,
  chooseEvictions,
  diskUsage,
  readCacheState,
  removeTree,
  underRoot,
  writeCacheState,
  type CacheLayout,
  type MirrorRecord,
} from './cache.js';
import { cloneCopy, fetchCopy, upstreamTarget } from './upstream-copy.js';
import { parseUpstreamUrl, UrlPolicy, type AdmittedUrl, type Resolver } from './url-policy.js';

export type JobState = 'queued' | 'cloning' | 'bundling' | 'ready' | 'failed';

export interface OnDemandOptions {
  /** Cache toplevel. */
  dir: string;
  allow: string[];
  /** A ready mirror older than this is fetched again when requested (default 1 h). */
  ttlMs?: number;
  /** Jobs cloning or fetching at once (default 2). */
  maxJobs?: number;
  /** Jobs waiting for a slot before requests for new URLs get E_BUSY (default 64). */
  maxQueued?: number;
  /** One mirror's size on disk (default 2 GiB). */
  maxRepoBytes?: number;
  /** The whole cache (default 20 GiB). */
  maxCacheBytes?: number;
  /** Deadline for one git clone or fetch (default 1 h). */
  gitTimeoutMs?: number;
  /** A failed job is retried by a request that comes this long after the failure (default 30 s). */
  retryFailedAfterMs?: number;
  resolver?: Resolver;
  log?: (line: string) => void;
  now?: () => number;
}

export interface JobView {
  url: string;
  path: string;
  state: JobState;
  /** The mirror existed and is being brought up to date. */
  refresh: boolean;
  progress: UpstreamProgress | null;
  error: { code: string; message: string; hint?: string } | null;
  requestedAt: string;
  updatedAt: string;
  /** When the mirror was last fetched from its upstream. */
  fetchedAt: string | null;
  /** Current bundles (relative to the repository's directory in the published tree) once ready. */
  bundles: { uri: string; size: number; sha256: string }[] | null;
}

interface Job {
  path: string;
  url: string;
  admitted: AdmittedUrl;
  state: JobState;
  refresh: boolean;
  progress: UpstreamProgress | null;
  error: BundlemirrorError | null;
  requestedAt: number;
  updatedAt: number;
  fetchedAt: number | null;
  failedAt: number | null;
  bundles: JobView['bundles'];
}

export class OnDemandService {
  readonly layout: CacheLayout;
  readonly policy: UrlPolicy;
  /** Git clones and fetches started (tests and metrics read them). */
  readonly counters = { clones: 0, fetches: 0, evictions: 0 };
  private readonly jobs = new Map<string, Job>();
  private readonly records: Record<string, MirrorRecord>;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly opts: Required<Omit<OnDemandOptions, 'resolver' | 'log' | 'now'>>;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;
  private readonly shutdown = new AbortController();

  private constructor(opts: OnDemandOptions, records: Record<string, MirrorRecord>) {
    this.layout = cacheLayout(opts.dir);
    this.policy = new UrlPolicy(opts.allow, opts.resolver);
    this.opts = {
      dir: opts.dir,
      allow: opts.allow,
      ttlMs: opts.ttlMs ?? 3600_000,
      maxJobs: opts.maxJobs ?? 2,
      maxQueued: opts.maxQueued ?? 64,
      maxRepoBytes: opts.maxRepoBytes ?? 2 * 1024 ** 3,
      maxCacheBytes: opts.maxCacheBytes ?? 20 * 1024 ** 3,
      gitTimeoutMs: opts.gitTimeoutMs ?? 3600_000,
      retryFailedAfterMs: opts.retryFailedAfterMs ?? 30_000,
    };
    this.log = opts.log ?? (() => {});
    this.now = opts.now ?? Date.now;
    this.records = records;
  }

  /** Opens the cache (creating it), forgets clones a previous run left half-done, and knows the mirrors it holds. */
  static async open(opts: OnDemandOptions): Promise<OnDemandService> {
    if (opts.allow.length === 0) {
      throw new BundlemirrorError('E_USAGE', '--on-demand needs at least one --allow pattern', {
        hint: 'e.g. --allow "https://github.com/*"',
      });
    }
    await mkdir(opts.dir, { recursive: true });
    // publish names repositories by their real path under the toplevel
    opts = { ...opts, dir: await realpath(opts.dir) };
    const layout = cacheLayout(opts.dir);
    await mkdir(layout.published, { recursive: true });
    await removeTree(layout.tmp);
    await mkdir(layout.tmp, { recursive: true });
    const records = await readCacheState(layout);
    const service = new OnDemandService(opts, records);
    for (const [path, rec] of Object.entries(records)) {
      const bundles = await service.readBundles(path);
      if (!bundles) {
        delete records[path];
        continue;
      }
      let admitted: AdmittedUrl;
      try {
        const u = parseUpstreamUrl(rec.url);
        admitted = { ...u, addresses: [], pattern: '' };
      } catch {
        continue;
      }
      service.jobs.set(path, {
        path,
        url: rec.url,
        admitted,
        state: 'ready',
        refresh: false,
        progress: null,
        error: null,
        requestedAt: rec.requestedAt,
        updatedAt: rec.fetchedAt,
        fetchedAt: rec.fetchedAt,
        failedAt: null,
        bundles,
      });
    }
    return service;
  }

  /** The published tree to serve. */
  get publishedDir(): string {
    return this.layout.published;
  }

  /**
   * A request for a URL: checks every rule (throws the refusal), then
   * returns the job for its mirror, starting one when there is none, the
   * last one failed a while ago, or the mirror is older than the TTL.
   */
  async request(input: string): Promise<JobView> {
    const admitted = await this.policy.admit(input);
    const now = this.now();
    let job = this.jobs.get(admitted.repoPath);
    // a refresh that failed is tried again only after a pause, like a failed job
    const rested = job?.failedAt === null || (job !== undefined && now - job.failedAt! >= this.opts.retryFailedAfterMs);
    const stale = job?.state === 'ready' && job.fetchedAt !== null && now - job.fetchedAt >= this.opts.ttlMs && rested;
    const retry =
      job?.state === 'failed' && job.failedAt !== null && now - job.failedAt >= this.opts.retryFailedAfterMs;
    if (!job || stale || retry) {
      if (!stale && this.queued() >= this.opts.maxQueued) {
        throw new BundlemirrorError('E_BUSY', `the service has ${this.queued()} jobs waiting`, {
          hint: 'try again in a few minutes',
        });
      }
      const mirrorExists = job?.state === 'ready' || (job !== undefined && job.fetchedAt !== null);
      job = {
        path: admitted.repoPath,
        url: job?.url ?? admitted.url,
        admitted,
        state: 'queued',
        refresh: mirrorExists,
        progress: null,
        error: null,
        requestedAt: now,
        updatedAt: now,
        fetchedAt: job?.fetchedAt ?? null,
        failedAt: null,
        bundles: job?.bundles ?? null,
      };
      this.jobs.set(job.path, job);
      this.start(job);
    }
    job.requestedAt = now;
    const rec = this.records[job.path];
    if (rec) rec.requestedAt = now;
    return this.view(job);
  }

  /** The job for a URL without starting anything; null when there is none. The URL rules still apply. */
  async lookup(input: string): Promise<JobView | null> {
    const admitted = await this.policy.admit(input);
    const job = this.jobs.get(admitted.repoPath);
    return job ? this.view(job) : null;
  }

  /** Waits for running jobs to finish (tests, shutdown). */
  async close(opts: { abort?: boolean } = {}): Promise<void> {
    this.closed = true;
    if (opts.abort) this.shutdown.abort(new BundlemirrorError('E_BUSY', 'the service is shutting down'));
    await Promise.allSettled([...this.inFlight]);
  }

  private queued(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (j.state === 'queued') n++;
    return n;
  }

  private view(job: Job): JobView {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      url: job.url,
      path: job.path,
      state: job.state,
      refresh: job.refresh,
      progress: job.progress,
      error: job.error
        ? { code: job.error.code, message: job.error.message, ...(job.error.hint ? { hint: job.error.hint } : {}) }
        : null,
      requestedAt: iso(job.requestedAt)!,
      updatedAt: iso(job.updatedAt)!,
      fetchedAt: iso(job.fetchedAt),
      bundles: job.state === 'ready' ? job.bundles : null,
    };
  }

  private start(job: Job): void {
    const run = this.run(job).finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }

  /** A slot among `maxJobs`; a released slot passes straight to the next waiter, so none is taken twice. */
  private async slot(): Promise<() => void> {
    if (this.running >= this.opts.maxJobs) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    return () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }

  private set(job: Job, state: JobState): void {
    job.state = state;
    job.updatedAt = this.now();
  }

  private async run(job: Job): Promise<void> {
    const release = await this.slot();
    try {
      if (this.closed) throw new BundlemirrorError('E_BUSY', 'the service is shutting down');
      this.set(job, 'cloning');
      const gitUrl = await upstreamTarget(job.admitted, this.policy);
      const mirror = underRoot(this.layout.dir, job.path);
      const exists = job.refresh && (await pathExists(join(mirror, 'HEAD')));
      const copy = {
        path: job.path,
        url: job.url,
        onProgress: (p: UpstreamProgress) => {
          job.progress = p;
          job.updatedAt = this.now();
        },
      };
      const limits = {
        maxRepoBytes: this.opts.maxRepoBytes,
        gitTimeoutMs: this.opts.gitTimeoutMs,
        shutdown: this.shutdown.signal,
      };
      if (exists) {
        this.counters.fetches++;
        await fetchCopy(copy, mirror, gitUrl, limits);
      } else {
        this.counters.clones++;
        await cloneCopy(copy, mirror, this.layout.tmp, gitUrl, limits);
      }
      this.set(job, 'bundling');
      job.progress = null;
      // a refresh may supersede bundles: their files go once the grace period is over
      const report = await publish({
        toplevel: this.layout.dir,
        out: this.layout.published,
        only: [mirror],
        gc: exists,
        log: (l) => this.log(l),
      });
      if (report.failed.length > 0) throw report.failed[0]!;
      const bundles = await this.readBundles(job.path);
      if (!bundles) throw new BundlemirrorError('E_INDEX', `publishing ${job.path} wrote no index`, { repo: job.path });
      job.bundles = bundles;
      job.fetchedAt = this.now();
      job.refresh = exists;
      this.records[job.path] = { url: job.url, requestedAt: job.requestedAt, fetchedAt: job.fetchedAt };
      await writeCacheState(this.layout, this.records);
      await this.trim(job.path);
      this.set(job, 'ready');
      this.log(`on-demand ${job.path}: ready (${bundles.length} bundle(s)) from ${gitUrl.url}`);
    } catch (err) {
      job.error = isBundlemirrorError(err)
        ? err
        : new BundlemirrorError('E_UPSTREAM', (err as Error)?.message ?? String(err), { repo: job.path, cause: err });
      job.failedAt = this.now();
      job.progress = null;
      // a failed refresh leaves the mirror and its bundles as they were: still worth serving
      const stillServed = job.refresh && job.bundles !== null && job.error.code !== 'E_REPO_TOO_LARGE';
      this.set(job, stillServed ? 'ready' : 'failed');
      this.log(printable(`on-demand ${job.path}: failed: ${job.error.message} [${job.error.code}]`));
      if (job.error.code === 'E_REPO_TOO_LARGE') await this.evict(job.path).catch(() => undefined);
    } finally {
      release();
    }
  }

  private async readBundles(path: string): Promise<JobView['bundles']> {
    try {
      const index = parseRepoIndex(await readFile(join(underRoot(this.layout.published, path), INDEX_FILE)), path);
      return currentBundles(index).map((b) => ({ uri: b.uri, size: b.size, sha256: b.sha256 }));
    } catch {
      return null;
    }
  }

  /** Evicts least recently requested mirrors until the cache fits its limit. */
  private async trim(keep: string): Promise<void> {
    const entries = [];
    for (const [path, rec] of Object.entries(this.records)) {
      const job = this.jobs.get(path);
      const busy = path === keep || (job !== undefined && job.state !== 'ready' && job.state !== 'failed');
      const bytes =
        (await diskUsage(underRoot(this.layout.dir, path))) + (await diskUsage(underRoot(this.layout.published, path)));
      entries.push({ path, bytes, requestedAt: rec.requestedAt, busy });
    }
    for (const path of chooseEvictions(entries, this.opts.maxCacheBytes)) {
      this.log(`on-demand ${path}: evicted (cache above ${this.opts.maxCacheBytes} bytes)`);
      await this.evict(path);
      this.counters.evictions++;
    }
  }

  private async evict(path: string): Promise<void> {
    await unpublish(this.layout.published, [path]);
    await removeTree(underRoot(this.layout.dir, path));
    delete this.records[path];
    const job = this.jobs.get(path);
    if (job && job.state === 'ready') this.jobs.delete(path);
    if (job) {
      job.bundles = null;
      job.fetchedAt = null;
    }
    await writeCacheState(this.layout, this.records);
  }
}
