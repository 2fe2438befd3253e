/**
 * `bundlemirror pull --daemon`: one long-running replica that pulls
 *
 * - every `[pull] refresh` seconds (grok-pull's continuous mode; 300 when
 *   unset), skipping repositories that belong to a schedule;
 * - at the times of each `[schedule "NAME"]` cron expression, just that
 *   schedule's repositories (late mirroring: big repositories at night);
 * - at once, just the named repositories, when the origin notifies it of a
 *   push (HTTP with a shared token, or grokmirror's UNIX socket).
 *
 * One run at a time: a run that comes due while another is in progress
 * waits for it, and runs of the same kind that pile up are merged into one
 * (notifications into one run of all their repositories). SIGTERM stops the
 * schedules, interrupts the run in progress through its AbortSignal (its
 * downloads keep their partial files for the next start), waits for it and
 * releases the locks; SIGHUP reloads the config and keeps the old one when
 * the new one is invalid. Time comes from a `Scheduler`, so tests can use a
 * fake clock.
 */
import { join } from 'node:path';
import { BundlemirrorError, isBundlemirrorError } from '../../errors.js';
import { repoPathProblem } from '../../git/refname.js';
import { acquireLock, type Release } from '../../lock/lock.js';
import { checkToplevel, type PullConfig } from '../config/config.js';
import { guardReplica } from '../own-paths.js';
import { scheduleOf } from './daemon-config.js';
import { JobQueue, label, describeReport, pullScopeOf, type DaemonJob } from './job-queue.js';
import type { PullLog } from '../log.js';
import { DaemonMetrics } from './metrics-daemon.js';
import { statusMetricFamilies } from '../metrics.js';
import { renderPrometheus, type MetricFamily } from '../../metrics/prometheus.js';
import { METRICS_PATH, NOTIFY_PATH } from './notify-protocol.js';
import {
  readNotifyToken,
  startListeners,
  type ListenerOptions,
  type Listeners,
  type NotifyOutcome,
} from './notify-listener.js';
import { stateDir } from '../paths.js';
import { notSelected } from '../plan/planner.js';
import { pull, type PullOptions, type PullReport } from '../pull.js';
import { nodeScheduler, type Scheduler } from './schedule.js';
import { describeTimetable, LOCK_RETRY_MS, Timetable } from './timetable.js';
import { replicaStatus } from '../status.js';

export interface DaemonOptions {
  config: PullConfig;
  log: PullLog;
  /** Reads the config again for reload(); default: none, so reload() keeps the current one. */
  loadConfig?: () => PullConfig | Promise<PullConfig>;
  /** Default: node-schedule and the real clock. */
  scheduler?: Scheduler;
  /** Default: pull(). Tests pass a slow or counting one. */
  runPull?: (config: PullConfig, opts: PullOptions) => Promise<PullReport>;
  /** false for --no-purge, true for -p; undefined: as the config says. */
  purge?: boolean;
  forcePurge?: boolean;
  /** Passed to every run: progress, retry waits, --retry-for. */
  pullOptions?: Pick<PullOptions, 'onProgress' | 'onWait' | 'retryForMs'>;
  /** Open `[bundlemirror] listen` and `[pull] socket` (default true). */
  listen?: boolean;
}

export interface Daemon {
  /** `http://host:port` of the notification and metrics listener, or null. */
  readonly url: string | null;
  readonly socket: string | null;
  readonly metrics: DaemonMetrics;
  /** Queues a pull of these repositories (what a notification does). */
  notify(paths: string[], source: string): NotifyOutcome;
  /** Re-reads the config; false (and the old config kept) when the new one is unusable. */
  reload(): Promise<boolean>;
  /** Resolves once no run is in progress or waiting. */
  idle(): Promise<void>;
  /** The text served at /metrics. */
  renderMetrics(): Promise<string>;
  /** Stops scheduling and interrupts the run in progress with `reason`; resolves true when a run was interrupted. */
  stop(reason?: Error): Promise<boolean>;
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const daemon = new PullDaemon(opts);
  await daemon.start();
  return daemon;
}

class PullDaemon implements Daemon {
  readonly metrics: DaemonMetrics;
  private config: PullConfig;
  private token: Buffer | null = null;
  private listeners: Listeners | null = null;
  private readonly timetable: Timetable;
  private readonly queue = new JobQueue();
  private current: { job: DaemonJob; abort: AbortController; done: Promise<void> } | null = null;
  private idleWaiters: (() => void)[] = [];
  private stopping: Promise<boolean> | null = null;
  private reloading: Promise<boolean> = Promise.resolve(true);
  private releaseLock: Release | null = null;
  private readonly scheduler: Scheduler;
  private readonly log: PullLog;
  private readonly runPull: NonNullable<DaemonOptions['runPull']>;

  constructor(private readonly opts: DaemonOptions) {
    this.config = opts.config;
    this.log = opts.log;
    this.scheduler = opts.scheduler ?? nodeScheduler;
    this.runPull = opts.runPull ?? pull;
    this.metrics = new DaemonMetrics(this.scheduler.now());
    this.timetable = new Timetable(this.scheduler, (job, why) => this.enqueue(job, why));
  }

  get url(): string | null {
    return this.listeners?.url ?? null;
  }

  get socket(): string | null {
    return this.listeners?.socket ?? null;
  }

  async start(): Promise<void> {
    const toplevel = this.config.core.toplevel;
    await checkToplevel(this.config);
    await guardReplica(this.config);
    this.releaseLock = await acquireLock({
      path: join(stateDir(toplevel), 'daemon'),
      what: `bundlemirror pull --daemon on ${toplevel}`,
    });
    try {
      this.token = await this.readToken(this.config);
      if (this.opts.listen !== false) this.listeners = await startListeners(this.listenerOptions(this.config));
      this.timetable.arm(this.config);
    } catch (err) {
      this.timetable.disarm();
      await this.listeners?.close();
      await this.releaseLock();
      throw err;
    }
    for (const line of this.describe()) this.log.info(line);
    this.enqueue({ trigger: 'refresh' }, 'start');
  }

  notify(paths: string[], source: string): NotifyOutcome {
    const config = this.config;
    const outcome: NotifyOutcome = { accepted: [], ignored: [] };
    for (const path of paths) {
      const problem = repoPathProblem(path);
      const why = problem ? `invalid path: ${problem}` : notSelected(path, config.pull);
      const group = why ? null : scheduleOf(path, config.schedules);
      if (this.stopping) outcome.ignored.push({ path, reason: 'the daemon is stopping' });
      else if (why) outcome.ignored.push({ path, reason: `not mirrored here: ${why}` });
      else if (group)
        outcome.ignored.push({
          path,
          reason: `pulled at the times of [schedule "${group.name}"] (${group.cron}), not on notification`,
        });
      else outcome.accepted.push(path);
    }
    const ignored = outcome.ignored.map((i) => `${i.path} (${i.reason})`).join(', ');
    this.log.info(
      `notification (${source}): ${outcome.accepted.length ? `pull ${outcome.accepted.join(' ')}` : 'nothing to pull'}${ignored ? `; ignored ${ignored}` : ''}`,
    );
    if (outcome.accepted.length)
      this.enqueue({ trigger: 'notify', paths: outcome.accepted }, `notification (${source})`);
    return outcome;
  }

  reload(): Promise<boolean> {
    this.reloading = this.reloading
      .then(() => this.reloadNow())
      .catch((err: unknown) => {
        this.log.error(`reload failed: ${(err as Error)?.stack ?? String(err)}`);
        return false;
      });
    return this.reloading;
  }

  idle(): Promise<void> {
    if (this.stopping !== null || (!this.current && !this.queue.hasPending())) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async renderMetrics(): Promise<string> {
    let status: MetricFamily[] = [];
    try {
      status = statusMetricFamilies(await replicaStatus(this.config, { sizes: false }));
    } catch (err) {
      this.log.warn(`metrics: no repository status: ${(err as Error).message}`);
    }
    return renderPrometheus([...this.metrics.families(), ...status]);
  }

  stop(reason?: Error): Promise<boolean> {
    this.stopping ??= (async () => {
      this.timetable.stop();
      this.queue.clear();
      const current = this.current;
      if (current) {
        this.log.info(
          `stopping: interrupting the ${label(current.job)}; its downloads keep their partial files for the next start`,
        );
        current.abort.abort(reason ?? new Error('interrupted: the daemon is stopping'));
      }
      await this.reloading;
      this.timetable.stop(); // in case a reload armed new timers meanwhile
      await this.listeners?.close();
      await current?.done;
      await this.releaseLock?.();
      this.resolveIdle();
      this.log.info('daemon stopped');
      return current !== null;
    })();
    return this.stopping;
  }

  private enqueue(job: DaemonJob, why: string): void {
    if (this.stopping) return;
    const merged = this.queue.add(job);
    if (this.current) {
      if (merged && job.trigger !== 'notify') this.metrics.tickCoalesced();
      this.log.info(
        merged
          ? `${label(job)} due (${why}) while the ${label(this.current.job)} is in progress: merged into the one already waiting`
          : `${label(job)} due (${why}) while the ${label(this.current.job)} is in progress: it starts when that one finishes`,
      );
    }
    this.kick();
  }

  private kick(): void {
    if (this.current || this.stopping) return;
    const job = this.queue.takeNext(this.config.schedules);
    if (!job) return this.resolveIdle();
    const abort = new AbortController();
    const done = this.run(job, abort).finally(() => {
      this.current = null;
      this.kick();
    });
    this.current = { job, abort, done };
  }

  private resolveIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async run(job: DaemonJob, abort: AbortController): Promise<void> {
    const config = this.config; // a run keeps the configuration it started with
    const started = this.scheduler.now();
    this.metrics.runStarted(job.trigger);
    this.log.info(`${label(job)}: started`);
    let report: PullReport | null = null;
    try {
      report = await this.runPull(config, {
        ...this.opts.pullOptions,
        ...pullScopeOf(job, config, this.opts),
        log: this.log,
        signal: abort.signal,
      });
      const took = `${((this.scheduler.now() - started) / 1000).toFixed(1)} s`;
      this.log.info(`${label(job)}: ${abort.signal.aborted ? 'interrupted: ' : ''}${describeReport(report)} (${took})`);
    } catch (err) {
      if (abort.signal.aborted) {
        this.log.info(`${label(job)}: interrupted`);
      } else if (isBundlemirrorError(err) && err.code === 'E_LOCKED') {
        this.log.warn(`${label(job)}: ${err.message}; trying again in ${LOCK_RETRY_MS / 1000} s`);
        if (!this.stopping) this.timetable.retryLater(job);
      } else {
        this.log.error(
          `${label(job)}: ${isBundlemirrorError(err) ? err.describe() : ((err as Error)?.stack ?? String(err))}`,
        );
      }
    } finally {
      this.metrics.runFinished(job.trigger, started, this.scheduler.now(), report);
    }
  }

  // --- configuration ----------------------------------------------------

  private async reloadNow(): Promise<boolean> {
    if (this.stopping) return false;
    const old = this.config;
    let next: PullConfig;
    let token: Buffer | null;
    try {
      if (!this.opts.loadConfig)
        throw new BundlemirrorError('E_CONFIG', 'this daemon was started without a config file to reload');
      next = await this.opts.loadConfig();
      if (next.core.toplevel !== old.core.toplevel) {
        throw new BundlemirrorError(
          'E_CONFIG',
          `[core] toplevel changed from ${old.core.toplevel} to ${next.core.toplevel}`,
          { hint: 'restart the daemon to mirror into another toplevel' },
        );
      }
      token = await this.readToken(next);
    } catch (err) {
      this.log.error(
        `reload failed, keeping the previous configuration: ${isBundlemirrorError(err) ? err.describe() : (err as Error).message}`,
      );
      this.metrics.reloaded(false);
      return false;
    }
    const moved =
      JSON.stringify(next.bundlemirror.listen) !== JSON.stringify(old.bundlemirror.listen) ||
      next.pull.socket !== old.pull.socket;
    if (moved && this.opts.listen !== false) {
      await this.listeners?.close(); // the new address may be the old socket path
      try {
        this.listeners = await startListeners(this.listenerOptions(next));
      } catch (err) {
        this.log.error(
          `reload failed, keeping the previous configuration: ${isBundlemirrorError(err) ? err.describe() : (err as Error).message}`,
        );
        this.listeners = await startListeners(this.listenerOptions(old)).catch((e: unknown) => {
          this.log.error(
            `cannot listen again on the previous addresses: ${(e as Error).message}; notifications are off until the next reload`,
          );
          return null;
        });
        this.metrics.reloaded(false);
        return false;
      }
    }
    if (this.stopping) return false;
    this.timetable.disarm();
    this.config = next;
    this.token = token;
    this.timetable.arm(next);
    for (const w of next.warnings) if (w.kind !== 'unused') this.log.warn(w.message);
    this.log.info(`reloaded ${next.file}`);
    for (const line of this.describe()) this.log.info(line);
    this.metrics.reloaded(true);
    return true;
  }

  private listenerOptions(config: PullConfig): ListenerOptions {
    return {
      listen: config.bundlemirror.listen,
      socket: config.pull.socket,
      socketMode: config.pull.socketMode,
      socketGroup: config.pull.socketGroup,
      token: () => this.token,
      notify: (paths, source) => this.notify(paths, source),
      metrics: () => this.renderMetrics(),
      count: (result) => this.metrics.notification(result),
      log: this.log,
    };
  }

  private readToken(config: PullConfig): Promise<Buffer | null> {
    const file = config.bundlemirror.notifyTokenFile;
    return file ? readNotifyToken(file, (m) => this.log.warn(m)) : Promise.resolve(null);
  }

  private describe(): string[] {
    const lines = describeTimetable(this.config);
    if (this.listeners?.url) {
      lines.push(
        `daemon: listening on ${this.listeners.url} (POST ${NOTIFY_PATH}${this.token ? '' : ' refused: no [bundlemirror] notify_token_file'}, GET ${METRICS_PATH})`,
      );
    }
    if (this.listeners?.socket)
      lines.push(`daemon: listening on socket ${this.listeners.socket} (repository paths, one per line)`);
    return lines;
  }
}
