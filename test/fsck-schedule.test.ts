import test from 'ava';
import { DAY_MS, planFsckSchedule, type FsckScheduleEntry } from '../src/replica/plan/fsck-schedule.js';

const T0 = Date.UTC(2026, 0, 1, 3, 0, 0);
const paths = (n: number) => Array.from({ length: n }, (_, i) => `/pub/scm/group${i % 37}/repo-${i}.git`);

/** Daily runs (at the same hour) from day 0 to `days`, checking what is due: the days on which each path was checked. */
function simulate(all: string[], frequencyDays: number, days: number): Map<string, number[]> {
  const record = new Map<string, { lastChecked: number | null; firstSeen: number | null }>();
  const checkedOn = new Map<string, number[]>(all.map((p) => [p, []]));
  for (let day = 0; day <= days; day++) {
    const now = T0 + day * DAY_MS;
    const entries: FsckScheduleEntry[] = all.map((path) => ({
      path,
      lastChecked: record.get(path)?.lastChecked ?? null,
      firstSeen: record.get(path)?.firstSeen ?? null,
    }));
    const plan = planFsckSchedule(entries, { now, frequencyDays });
    for (const p of plan.firstSeen) record.set(p, { lastChecked: null, firstSeen: now });
    for (const p of plan.due) {
      record.set(p, { ...record.get(p)!, lastChecked: now });
      checkedOn.get(p)!.push(day);
    }
  }
  return checkedOn;
}

test('a new collection is not checked all at once: the first run only records it', (t) => {
  const all = paths(500);
  const plan = planFsckSchedule(
    all.map((path) => ({ path, lastChecked: null, firstSeen: null })),
    { now: T0, frequencyDays: 30 },
  );
  t.deepEqual(plan.due, []);
  t.deepEqual(plan.firstSeen, all);
  for (const p of all) {
    t.true(plan.nextDue[p]! > T0, p);
    t.true(plan.nextDue[p]! <= T0 + 30 * DAY_MS, p);
  }
});

test('daily runs check each repository once every frequency days, spread evenly over the period', (t) => {
  const all = paths(3000);
  const checkedOn = simulate(all, 30, 60);
  const perDay = new Array<number>(61).fill(0);
  for (const [p, days] of checkedOn) {
    t.is(days.length, 2, `${p} is checked twice in two periods`);
    t.is(days[1]! - days[0]!, 30, `${p} is checked every 30 days`);
    for (const d of days) perDay[d]!++;
  }
  t.is(perDay[0], 0, 'nothing on the first night');
  // 3000 over 30 days is 100 a night; a hash spreads them within a few tens of that
  for (let d = 1; d <= 60; d++) t.true(perDay[d]! >= 60 && perDay[d]! <= 140, `night ${d}: ${perDay[d]}`);
});

test('the schedule is deterministic: the same paths fall on the same nights in every run', (t) => {
  const all = paths(200);
  t.deepEqual([...simulate(all, 7, 20)], [...simulate(all, 7, 20)]);
  // and a path's night does not depend on which other repositories exist
  const alone = simulate([all[5]!], 7, 20).get(all[5]!);
  t.deepEqual(alone, simulate(all, 7, 20).get(all[5]!));
});

test('a repository whose check was missed (the machine was off) is due at the next run', (t) => {
  const path = '/pub/a.git';
  const now = T0 + 100 * DAY_MS;
  const late = planFsckSchedule([{ path, lastChecked: now - 45 * DAY_MS, firstSeen: null }], {
    now,
    frequencyDays: 30,
  });
  t.deepEqual(late.due, [path]);
  const fresh = planFsckSchedule([{ path, lastChecked: now - 1000, firstSeen: null }], { now, frequencyDays: 30 });
  t.deepEqual(fresh.due, []);
  t.true(fresh.nextDue[path]! > now && fresh.nextDue[path]! <= now + 30 * DAY_MS);
});
