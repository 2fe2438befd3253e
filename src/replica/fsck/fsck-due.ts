/**
 * The schedule of `fsck --due` applied to the repositories on disk: which
 * are due (plan/fsck-schedule.ts decides, from fsck-record.ts), and what a
 * run writes back (when each was checked and how, when it is next due, how
 * many repacks since the last full one).
 */
import { DAY_MS, latestSlot, planFsckSchedule } from '../plan/fsck-schedule.js';
import type { Target } from './fsck-targets.js';
import { updateFsckRecord, type FsckRecordChange, type FsckRecordEntry } from './fsck-record.js';
import type { FsckRepoReport } from './fsck-report.js';

export interface DueSelection {
  due: Target[];
  /** Paths fsck sees for the first time: their first check falls somewhere in the coming period. */
  firstSeen: string[];
}

export function selectDue(
  targets: readonly Target[],
  record: Readonly<Record<string, FsckRecordEntry>>,
  opts: { now: number; frequencyDays: number },
): DueSelection {
  const time = (iso: string | undefined) => {
    const ms = iso === undefined ? NaN : Date.parse(iso);
    return Number.isNaN(ms) ? null : ms;
  };
  const plan = planFsckSchedule(
    targets.map((t) => ({
      path: t.path,
      lastChecked: time(record[t.path]?.lastChecked),
      firstSeen: time(record[t.path]?.firstSeen),
    })),
    opts,
  );
  const due = new Set(plan.due);
  return { due: targets.filter((t) => due.has(t.path)), firstSeen: plan.firstSeen };
}

export async function recordRun(
  toplevel: string,
  run: {
    now: number;
    frequencyDays: number;
    checked: readonly FsckRepoReport[];
    firstSeen: readonly string[];
    forget: readonly string[];
    warn: (message: string) => void;
  },
): Promise<void> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const period = run.frequencyDays * DAY_MS;
  const changes = new Map<string, FsckRecordChange>();
  for (const path of run.firstSeen) changes.set(path, (cur) => ({ ...cur, firstSeen: iso(run.now) }));
  for (const r of run.checked) {
    const before = changes.get(r.path);
    changes.set(r.path, (current) => {
      const cur = before ? before(current) : current;
      const next: FsckRecordEntry = {
        ...cur,
        lastChecked: iso(run.now),
        lastOutcome: r.outcome,
        nextDue: iso(latestSlot(r.path, run.now, period) + period),
      };
      if (r.repacked) next.repacksSinceFull = r.fullRepack ? 0 : (cur?.repacksSinceFull ?? 0) + 1;
      return next;
    });
  }
  for (const path of run.forget) changes.set(path, () => null);
  await updateFsckRecord(toplevel, changes, run.warn);
}
