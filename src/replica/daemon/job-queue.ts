/**
 * The runs waiting while another is in progress. Runs of one kind merge:
 * one refresh, one run per schedule, and every notified repository in one
 * run. Notifications go first (someone is waiting for them), then the
 * refresh, then schedules in the config's order.
 */
import { formatBytes } from '../../format/bytes.js';
import type { PullConfig } from '../config/config.js';
import type { PullOptions, PullReport } from '../pull.js';
import { scheduleOf } from './daemon-config.js';

export type DaemonJob =
  { trigger: 'refresh' } | { trigger: 'schedule'; name: string } | { trigger: 'notify'; paths: string[] };

export class JobQueue {
  private refresh = false;
  private readonly schedules = new Set<string>();
  private readonly notify = new Set<string>();

  /** Queues a run; true when it merged into one already waiting. */
  add(job: DaemonJob): boolean {
    let merged: boolean;
    if (job.trigger === 'refresh') {
      merged = this.refresh;
      this.refresh = true;
    } else if (job.trigger === 'schedule') {
      merged = this.schedules.has(job.name);
      this.schedules.add(job.name);
    } else {
      merged = this.notify.size > 0;
      for (const p of job.paths) this.notify.add(p);
    }
    return merged;
  }

  hasPending(): boolean {
    return this.refresh || this.schedules.size > 0 || this.notify.size > 0;
  }

  clear(): void {
    this.refresh = false;
    this.schedules.clear();
    this.notify.clear();
  }

  takeNext(schedules: PullConfig['schedules']): DaemonJob | null {
    if (this.notify.size) {
      const paths = [...this.notify].sort();
      this.notify.clear();
      return { trigger: 'notify', paths };
    }
    if (this.refresh) {
      this.refresh = false;
      return { trigger: 'refresh' };
    }
    for (const s of schedules) {
      if (this.schedules.delete(s.name)) return { trigger: 'schedule', name: s.name };
    }
    this.schedules.clear(); // schedules a reload removed
    return null;
  }
}

export function label(job: DaemonJob): string {
  switch (job.trigger) {
    case 'refresh':
      return 'refresh run';
    case 'schedule':
      return `[schedule "${job.name}"] run`;
    case 'notify':
      return `notified run of ${job.paths.slice(0, 5).join(' ')}${job.paths.length > 5 ? ` and ${job.paths.length - 5} more` : ''}`;
  }
}

export function describeReport(r: PullReport): string {
  if (r.manifestUnchanged) return `manifest unchanged, ${r.unchanged} repositories in sync`;
  const parts = [`cloned ${r.cloned.length}`, `updated ${r.updated.length}`, `unchanged ${r.unchanged}`];
  if (r.metadata.length) parts.push(`metadata ${r.metadata.length}`);
  if (r.purged.length) parts.push(`purged ${r.purged.length}`);
  parts.push(`failed ${r.failed.length + r.problems.length}`);
  return `${parts.join(', ')}; downloaded ${formatBytes(r.bytesDownloaded)}`;
}

/** What a job pulls: a refresh all but the schedules' repositories, a schedule its own, a notification the named ones. */
export function pullScopeOf(
  job: DaemonJob,
  config: PullConfig,
  opts: { purge?: boolean | undefined; forcePurge?: boolean | undefined },
): Omit<PullOptions, 'log'> {
  const common = {
    forcePurge: opts.forcePurge,
    ...(opts.purge !== undefined ? { purge: opts.purge } : {}),
  };
  const schedules = config.schedules;
  switch (job.trigger) {
    case 'refresh':
      return { ...common, ...(schedules.length ? { scope: (p: string) => scheduleOf(p, schedules) === null } : {}) };
    case 'schedule':
      return { ...common, scope: (p: string) => scheduleOf(p, schedules)?.name === job.name, partial: true };
    case 'notify':
      return { only: job.paths, purge: false };
  }
}
