/**
 * Time, as the daemon sees it: a small interface so tests drive the daemon
 * with a fake clock instead of waiting real minutes. The real one is
 * node-schedule (cron expressions in local time, one-off dates).
 *
 * node-schedule facts this relies on (verified on 2.1): `scheduleJob`
 * returns null for a spec it cannot schedule (an invalid cron string, a
 * date in the past, an expression that never fires), and a string it
 * cannot parse as cron is tried as a date, so "2030-01-01" would silently
 * become a one-off job: cron expressions are checked for their field count
 * first. Jobs are cancelled one by one (`gracefulShutdown()` can leave a
 * timer alive).
 */
import schedule from 'node-schedule';
import { cronFieldsProblem } from '../../config/schedule-section.js';

export interface ScheduledTimer {
  cancel(): void;
}

export interface Scheduler {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once at `whenMs` (soon, when that is already past). */
  at(whenMs: number, fn: () => void): ScheduledTimer;
  /** Calls `fn` at every occurrence of a cron expression; null when it cannot be scheduled. */
  cron(expression: string, fn: () => void): ScheduledTimer | null;
}

/** Why a cron expression is unusable, or null when node-schedule accepts it. */
export function cronProblem(expression: string): string | null {
  const fields = cronFieldsProblem(expression);
  if (fields !== null) return fields;
  const job = schedule.scheduleJob(expression, () => {});
  if (!job)
    return 'is not a cron expression node-schedule can schedule (a value out of range, or a date that never comes)';
  job.cancel();
  return null;
}

/** The next time a cron expression fires after now, for log lines; null when it cannot be scheduled. */
export function nextCronDate(expression: string): Date | null {
  if (cronProblem(expression) !== null) return null;
  const job = schedule.scheduleJob(expression, () => {});
  if (!job) return null;
  const next = job.nextInvocation();
  job.cancel();
  return next ? new Date(next.getTime()) : null;
}

/** Margin that keeps node-schedule from refusing a date that became past while it was being scheduled. */
const MIN_DELAY_MS = 10;

export const nodeScheduler: Scheduler = {
  now: () => Date.now(),
  at(whenMs, fn) {
    const job = schedule.scheduleJob(new Date(Math.max(whenMs, Date.now() + MIN_DELAY_MS)), fn);
    if (job) return { cancel: () => void job.cancel() };
    const timer = setTimeout(fn, MIN_DELAY_MS);
    return { cancel: () => clearTimeout(timer) };
  },
  cron(expression, fn) {
    if (cronProblem(expression) !== null) return null;
    const job = schedule.scheduleJob(expression, fn);
    return job ? { cancel: () => void job.cancel() } : null;
  },
};
