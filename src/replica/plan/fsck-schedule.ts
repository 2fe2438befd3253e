/**
 * Which repositories `fsck --due` checks today: each one every `frequency`
 * days, spread over the period so a 10,000-repository replica checks about
 * a 30th of its repositories each night instead of all of them on one.
 *
 * A repository's checks fall on fixed instants, `period * k + phase`,
 * where the phase is a stable hash of its path: the same repository lands
 * on the same day of the cycle on every machine and after every restart,
 * and a list of paths spreads evenly over the period. A repository is due
 * once the latest of its instants has passed since it was last checked; a
 * missed run (the machine was off) is caught up by the next one. A
 * repository never checked counts from when fsck first saw it, so
 * repositories added together (a new replica, a big import) also spread
 * out instead of all being due on the first night.
 *
 * Pure: the caller reads the record and the clock, and writes back.
 */
import { createHash } from 'node:crypto';

export const DAY_MS = 86_400_000;

export interface FsckScheduleEntry {
  path: string;
  /** When fsck last checked it (ms since the epoch); null: never. */
  lastChecked: number | null;
  /** When fsck first saw it (ms since the epoch); null: not recorded yet. */
  firstSeen: number | null;
}

export interface FsckSchedule {
  /** Paths to check now, in input order. */
  due: string[];
  /** Paths seen for the first time: record `firstSeen = now` for them. */
  firstSeen: string[];
  /** For every path: the next instant it becomes due if it is not checked now. */
  nextDue: Record<string, number>;
}

/** Where in the period a path's checks fall, in ms from the start of the period: a hash of the path. */
export function fsckPhase(path: string, periodMs: number): number {
  const h = createHash('sha256').update(path).digest();
  // 48 bits are plenty to spread over any period and stay exact in a double
  return h.readUIntBE(0, 6) % periodMs;
}

/** The latest check instant of `path` at or before `at`. */
export function latestSlot(path: string, at: number, periodMs: number): number {
  const phase = fsckPhase(path, periodMs);
  return Math.floor((at - phase) / periodMs) * periodMs + phase;
}

export function planFsckSchedule(
  entries: readonly FsckScheduleEntry[],
  opts: { now: number; frequencyDays: number },
): FsckSchedule {
  const period = opts.frequencyDays * DAY_MS;
  const due: string[] = [];
  const firstSeen: string[] = [];
  const nextDue: Record<string, number> = {};
  for (const e of entries) {
    if (e.lastChecked === null && e.firstSeen === null) firstSeen.push(e.path);
    const since = e.lastChecked ?? e.firstSeen ?? opts.now;
    const slot = latestSlot(e.path, opts.now, period);
    if (since < slot) {
      due.push(e.path);
      nextDue[e.path] = slot;
    } else {
      nextDue[e.path] = latestSlot(e.path, since, period) + period;
    }
  }
  return { due, firstSeen, nextDue };
}
