/**
 * When the daemon's runs come due: the refresh tick (`[pull] refresh`), the
 * times of each `[schedule "NAME"]`, and the retry of a run that found the
 * toplevel locked by a one-off pull. It only says "this job is due"; the
 * daemon queues and runs it.
 */
import { BundlemirrorError } from '../../errors.js';
import type { PullConfig } from '../config/config.js';
import type { DaemonJob } from './job-queue.js';
import { nextCronDate, type ScheduledTimer, type Scheduler } from './schedule.js';

/** grok-pull's refresh when the config has none. */
const DEFAULT_REFRESH_SECONDS = 300;
/** How long to wait before retrying a run that found the toplevel locked by a one-off pull. */
export const LOCK_RETRY_MS = 15_000;

export class Timetable {
  private refreshTimer: ScheduledTimer | null = null;
  private cronTimers: ScheduledTimer[] = [];
  private readonly retryTimers = new Set<ScheduledTimer>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly due: (job: DaemonJob, why: string) => void,
  ) {}

  /** Arms the refresh tick and every schedule of `config`. */
  arm(config: PullConfig): void {
    const everyMs = (config.pull.refresh ?? DEFAULT_REFRESH_SECONDS) * 1000;
    this.armRefresh(this.scheduler.now() + everyMs, everyMs);
    for (const s of config.schedules) {
      const timer = this.scheduler.cron(s.cron, () =>
        this.due({ trigger: 'schedule', name: s.name }, `cron ${s.cron}`),
      );
      if (!timer)
        throw new BundlemirrorError(
          'E_CONFIG',
          `[schedule "${s.name}"] cron ${JSON.stringify(s.cron)} cannot be scheduled`,
          { hint: 'fields are minute hour day-of-month month day-of-week' },
        );
      this.cronTimers.push(timer);
    }
  }

  /** Cancels the refresh tick and the schedules (a reload arms the new ones); retries stay. */
  disarm(): void {
    this.refreshTimer?.cancel();
    this.refreshTimer = null;
    for (const t of this.cronTimers) t.cancel();
    this.cronTimers = [];
  }

  /** Cancels everything, retries included. */
  stop(): void {
    this.disarm();
    for (const t of this.retryTimers) t.cancel();
    this.retryTimers.clear();
  }

  /** The job again after LOCK_RETRY_MS. */
  retryLater(job: DaemonJob): void {
    const timer = this.scheduler.at(this.scheduler.now() + LOCK_RETRY_MS, () => {
      this.retryTimers.delete(timer);
      this.due(job, 'retry after a busy toplevel');
    });
    this.retryTimers.add(timer);
  }

  /** One tick at `atMs`, the next one interval later; ticks missed while the machine slept are not made up. */
  private armRefresh(atMs: number, everyMs: number): void {
    this.refreshTimer = this.scheduler.at(atMs, () => {
      const now = this.scheduler.now();
      const next = atMs + everyMs > now ? atMs + everyMs : now + everyMs;
      this.armRefresh(next, everyMs);
      this.due({ trigger: 'refresh' }, 'refresh interval');
    });
  }
}

/** The log lines that say when `config` pulls. */
export function describeTimetable(config: PullConfig): string[] {
  const c = config;
  const lines = [
    `daemon: mirroring ${c.remote.manifest} into ${c.core.toplevel}, every ${c.pull.refresh ?? DEFAULT_REFRESH_SECONDS} s${c.pull.refresh === null ? " ([pull] refresh not set: grok-pull's default)" : ''}`,
  ];
  for (const s of c.schedules) {
    const next = nextCronDate(s.cron);
    lines.push(
      `daemon: [schedule "${s.name}"] ${s.include.join(' ')} at "${s.cron}"${next ? `, next ${next.toISOString()}` : ''}`,
    );
  }
  return lines;
}
