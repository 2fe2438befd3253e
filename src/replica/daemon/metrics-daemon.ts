/**
 * What `pull --daemon` counts about itself, for /metrics: runs by trigger,
 * failed runs, repositories synced, coalesced ticks, notifications by
 * outcome, reloads, the last run's time and duration, and the transfer
 * totals of this process. The replica's repositories by state come from
 * `bundlemirror status` (status.ts, metrics.ts) and are appended to these.
 */
import { LabelledCounter, renderPrometheus, single, type MetricFamily } from '../../metrics/prometheus.js';
import { transferStats } from '../../transfer/download-stats.js';
import type { PullReport } from '../pull.js';

export const RUN_TRIGGERS = ['refresh', 'schedule', 'notify'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

/** How a notification ended: queued, refused for its token, malformed, sent while notifications are off, or over the client's rate limit. */
export const NOTIFY_RESULTS = ['accepted', 'unauthorized', 'invalid', 'disabled', 'limited'] as const;
export type NotifyResult = (typeof NOTIFY_RESULTS)[number];

interface LastRun {
  trigger: RunTrigger;
  startedMs: number;
  durationMs: number;
  ok: boolean;
}

export class DaemonMetrics {
  private readonly runs = new LabelledCounter(RUN_TRIGGERS);
  private readonly failedRuns = new LabelledCounter(RUN_TRIGGERS);
  private readonly synced = new LabelledCounter(['cloned', 'updated', 'metadata', 'purged', 'failed']);
  private readonly notifications = new LabelledCounter(NOTIFY_RESULTS);
  private readonly reloads = new LabelledCounter(['ok', 'failed']);
  private coalesced = 0;
  private running: RunTrigger | null = null;
  /** The last finished run of each trigger: a schedule's nightly run must not hide behind the refresh runs. */
  private readonly last = new Map<string, LastRun>();
  private lastSuccessMs: number | null = null;

  constructor(private readonly startedMs: number) {}

  runStarted(trigger: RunTrigger): void {
    this.runs.inc(trigger);
    this.running = trigger;
  }

  /** `report` is null when the run threw (interrupted, manifest unreachable, lock busy). */
  runFinished(trigger: RunTrigger, startedMs: number, endedMs: number, report: PullReport | null): void {
    const ok = report !== null && report.failed.length === 0 && report.problems.length === 0;
    if (!ok) this.failedRuns.inc(trigger);
    if (report) {
      this.synced.inc('cloned', report.cloned.length);
      this.synced.inc('updated', report.updated.length);
      this.synced.inc('metadata', report.metadata.length);
      this.synced.inc('purged', report.purged.length);
      this.synced.inc('failed', report.failed.length);
    }
    this.running = null;
    this.last.set(trigger, { trigger, startedMs, durationMs: endedMs - startedMs, ok });
    if (ok) this.lastSuccessMs = endedMs;
  }

  tickCoalesced(): void {
    this.coalesced += 1;
  }

  notification(result: NotifyResult): void {
    this.notifications.inc(result);
  }

  reloaded(ok: boolean): void {
    this.reloads.inc(ok ? 'ok' : 'failed');
  }

  /** Runs started by trigger (tests and log lines). */
  runCount(trigger: RunTrigger): number {
    return this.runs.get(trigger);
  }

  families(): MetricFamily[] {
    const t = transferStats();
    const seconds = (ms: number) => ms / 1000;
    const families: MetricFamily[] = [
      single(
        'bundlemirror_daemon_start_timestamp_seconds',
        'When this daemon started.',
        'gauge',
        seconds(this.startedMs),
      ),
      {
        name: 'bundlemirror_daemon_runs_total',
        help: 'Pull runs started, by what triggered them.',
        type: 'counter',
        samples: this.runs.samples('trigger'),
      },
      {
        name: 'bundlemirror_daemon_run_failures_total',
        help: 'Pull runs that failed or left a repository failed, by trigger.',
        type: 'counter',
        samples: this.failedRuns.samples('trigger'),
      },
      single(
        'bundlemirror_daemon_run_in_progress',
        'Whether a pull run is in progress.',
        'gauge',
        this.running ? 1 : 0,
      ),
      single(
        'bundlemirror_daemon_ticks_coalesced_total',
        'Runs that came due while the same run was already waiting behind the one in progress, and were merged into it.',
        'counter',
        this.coalesced,
      ),
      {
        name: 'bundlemirror_daemon_repositories_synced_total',
        help: 'Repository outcomes of all runs.',
        type: 'counter',
        samples: this.synced.samples('outcome'),
      },
      {
        name: 'bundlemirror_daemon_notifications_total',
        help: 'Push notifications received, by outcome.',
        type: 'counter',
        samples: this.notifications.samples('result'),
      },
      {
        name: 'bundlemirror_daemon_reloads_total',
        help: 'Configuration reloads (SIGHUP), by outcome.',
        type: 'counter',
        samples: this.reloads.samples('result'),
      },
      single('bundlemirror_downloads_total', 'Resumable downloads started by this process.', 'counter', t.downloads),
      single('bundlemirror_downloaded_bytes_total', 'Bytes downloaded by this process.', 'counter', t.bytesDownloaded),
      single(
        'bundlemirror_resumed_bytes_total',
        'Bytes not downloaded again because a download resumed from a partial file.',
        'counter',
        t.bytesResumed,
      ),
      single(
        'bundlemirror_download_restarts_total',
        'Downloads that had to start over from byte 0.',
        'counter',
        t.restarts,
      ),
      single(
        'bundlemirror_download_verify_failures_total',
        'Downloads whose bytes did not match the published sha256.',
        'counter',
        t.verifyFailures,
      ),
    ];
    if (this.last.size) {
      const runs = [...this.last.values()].sort((a, b) => (a.trigger < b.trigger ? -1 : 1));
      const each = (value: (r: LastRun) => number) =>
        runs.map((r) => ({ labels: { trigger: r.trigger }, value: value(r) }));
      families.push(
        {
          name: 'bundlemirror_daemon_last_run_timestamp_seconds',
          help: 'When the last finished run of each trigger started.',
          type: 'gauge',
          samples: each((r) => seconds(r.startedMs)),
        },
        {
          name: 'bundlemirror_daemon_last_run_duration_seconds',
          help: 'How long the last finished run of each trigger took.',
          type: 'gauge',
          samples: each((r) => seconds(r.durationMs)),
        },
        {
          name: 'bundlemirror_daemon_last_run_success',
          help: 'Whether the last finished run of each trigger left every repository verified.',
          type: 'gauge',
          samples: each((r) => (r.ok ? 1 : 0)),
        },
      );
    }
    if (this.lastSuccessMs !== null) {
      families.push(
        single(
          'bundlemirror_daemon_last_success_timestamp_seconds',
          'When the last run that left every repository verified ended.',
          'gauge',
          seconds(this.lastSuccessMs),
        ),
      );
    }
    return families;
  }

  render(): string {
    return renderPrometheus(this.families());
  }
}
