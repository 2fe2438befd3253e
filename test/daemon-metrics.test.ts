import test from 'ava';
import { DaemonMetrics } from '../src/replica/daemon/metrics-daemon.js';
import type { PullReport } from '../src/replica/pull.js';
import { parsePrometheus } from './support/prometheus.js';

const report = (failed = 0) =>
  ({
    cloned: [],
    updated: [],
    metadata: [],
    purged: [],
    failed: Array(failed).fill({}),
    problems: [],
  }) as unknown as PullReport;

test('/metrics keeps the last run of each trigger: a failed nightly schedule run stays visible after later refresh runs', (t) => {
  const m = new DaemonMetrics(0);
  m.runStarted('schedule');
  m.runFinished('schedule', 1_000, 61_000, report(1));
  m.runStarted('refresh');
  m.runFinished('refresh', 100_000, 102_000, report());
  m.runStarted('notify');
  m.runFinished('notify', 200_000, 200_500, report());
  const p = parsePrometheus(m.render());
  t.is(p.value('bundlemirror_daemon_last_run_success', { trigger: 'schedule' }), 0);
  t.is(p.value('bundlemirror_daemon_last_run_success', { trigger: 'refresh' }), 1);
  t.is(p.value('bundlemirror_daemon_last_run_success', { trigger: 'notify' }), 1);
  t.is(p.value('bundlemirror_daemon_last_run_timestamp_seconds', { trigger: 'schedule' }), 1);
  t.is(p.value('bundlemirror_daemon_last_run_duration_seconds', { trigger: 'schedule' }), 60);
  t.is(p.value('bundlemirror_daemon_last_run_timestamp_seconds', { trigger: 'notify' }), 200);
});
