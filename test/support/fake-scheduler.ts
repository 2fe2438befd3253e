/**
 * A fake clock for the daemon's Scheduler: time stands still until the test
 * calls `advance(ms)`, which fires every due timer and cron occurrence in
 * time order, letting promises settle after each one. Cron expressions are
 * validated by the real node-schedule check (cronProblem) and matched here
 * minute by minute (five fields, local time: *, N, A-B, lists, /STEP).
 */
import { cronProblem, type ScheduledTimer, type Scheduler } from '../../src/replica/daemon/schedule.js';

interface Entry {
  at: number;
  fn: () => void;
  cancelled: boolean;
  /** Set for cron entries: recomputes `at` after each firing. */
  cron?: CronMatcher;
}

export class FakeScheduler implements Scheduler {
  private t: number;
  private readonly entries: Entry[] = [];

  /** Default start: 2026-11-22 00:00 local time. */
  constructor(start = new Date(2026, 10, 22, 0, 0, 0).getTime()) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  at(whenMs: number, fn: () => void): ScheduledTimer {
    const e: Entry = { at: Math.max(whenMs, this.t), fn, cancelled: false };
    this.entries.push(e);
    return { cancel: () => void (e.cancelled = true) };
  }

  cron(expression: string, fn: () => void): ScheduledTimer | null {
    if (cronProblem(expression) !== null) return null;
    const cron = new CronMatcher(expression);
    const e: Entry = { at: cron.next(this.t), fn, cancelled: false, cron };
    this.entries.push(e);
    return { cancel: () => void (e.cancelled = true) };
  }

  /** Timers and cron jobs not cancelled (a stopped daemon must leave none). */
  get live(): number {
    return this.entries.filter((e) => !e.cancelled).length;
  }

  /** Moves time forward by `ms`, firing what comes due (at most 10,000 firings). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (let i = 0; i < 10_000; i++) {
      const due = this.entries.filter((e) => !e.cancelled && e.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.t = due.at;
      if (due.cron) due.at = due.cron.next(this.t);
      else due.cancelled = true;
      due.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** Lets pending promise callbacks and I/O callbacks run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

const RANGES: [number, number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

class CronMatcher {
  private readonly sets: Set<number>[];
  private readonly domAny: boolean;
  private readonly dowAny: boolean;

  constructor(expression: string) {
    const fields = expression.trim().split(/\s+/);
    if (fields.length !== 5)
      throw new Error(`fake scheduler: only five-field cron expressions, got ${JSON.stringify(expression)}`);
    this.sets = fields.map((f, i) => parseField(f, RANGES[i]!));
    if (this.sets[4]!.has(7)) this.sets[4]!.add(0);
    this.domAny = fields[2] === '*';
    this.dowAny = fields[4] === '*';
  }

  /** The first matching minute strictly after `ms`. */
  next(ms: number): number {
    const d = new Date(ms);
    d.setSeconds(0, 0);
    for (let i = 0; i < 366 * 24 * 60; i++) {
      d.setMinutes(d.getMinutes() + 1);
      if (this.matches(d)) return d.getTime();
    }
    return Infinity;
  }

  private matches(d: Date): boolean {
    const [min, hour, dom, month, dow] = this.sets as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
    if (!min.has(d.getMinutes()) || !hour.has(d.getHours()) || !month.has(d.getMonth() + 1)) return false;
    const domOk = dom.has(d.getDate());
    const dowOk = dow.has(d.getDay());
    if (this.domAny || this.dowAny) return domOk && dowOk;
    return domOk || dowOk; // cron: either day field may match when both are restricted
  }
}

function parseField(field: string, [lo, hi]: [number, number]): Set<number> {
  const out = new Set<number>();
  for (const part of field.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    let from = lo;
    let to = hi;
    if (range !== '*') {
      const [a, b] = range!.split('-');
      from = Number(a);
      to = b === undefined ? (stepText === undefined ? from : hi) : Number(b);
    }
    if (![from, to, step].every(Number.isInteger) || step < 1)
      throw new Error(`fake scheduler: cannot read cron field ${JSON.stringify(field)}`);
    for (let v = from; v <= to; v += step) out.add(v);
  }
  return out;
}
