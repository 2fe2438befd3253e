/**
 * A replica's status as Prometheus gauges, for the daemon's /metrics (which
 * appends them to its own counters) or a node_exporter textfile
 * (`bundlemirror status --metrics`). Pure: it renders a `ReplicaStatus`, it
 * measures nothing.
 */
import { renderPrometheus, type MetricFamily, type Sample } from '../metrics/prometheus.js';
import { REPO_STATES, type ReplicaStatus } from './status.js';

export interface MetricsOptions {
  /** One series per repository as well (default true); turn off for very large collections. */
  perRepo?: boolean;
}

export function statusMetricFamilies(status: ReplicaStatus, opts: MetricsOptions = {}): MetricFamily[] {
  const families: MetricFamily[] = [];
  const gauge = (name: string, help: string, samples: Sample[]): void => {
    if (samples.length > 0) families.push({ name, help, type: 'gauge', samples });
  };
  gauge(
    'bundlemirror_replica_repositories',
    'Repositories of the replica by sync state.',
    REPO_STATES.map((s) => ({ labels: { state: s }, value: status.counts[s] })),
  );
  if (status.sizeBytes !== null) {
    gauge('bundlemirror_replica_objects_bytes', 'Bytes under objects/ of every repository and shared object store.', [
      { value: status.sizeBytes },
    ]);
  }
  if (status.lfs) {
    gauge('bundlemirror_replica_lfs_objects', 'Git LFS objects in the lfs/objects/ store of every repository.', [
      { value: status.lfs.objects },
    ]);
    gauge('bundlemirror_replica_lfs_bytes', 'Bytes of those Git LFS objects.', [{ value: status.lfs.bytes }]);
  }
  gauge('bundlemirror_replica_lock_held', 'Whether a pull (or a repairing fsck) holds the toplevel lock.', [
    { value: status.lock.held ? 1 : 0 },
  ]);
  const saved = seconds(status.manifest.savedAt);
  if (saved !== null)
    gauge(
      'bundlemirror_replica_remote_manifest_saved_timestamp_seconds',
      'When pull last saved a changed remote manifest.',
      [{ value: saved }],
    );
  const signed = status.manifest.signed;
  if (signed) {
    // alert on this one: a frozen origin or mirror still serves a tree that verifies
    gauge(
      'bundlemirror_replica_signed_manifest_published_timestamp_seconds',
      'Publish time of the newest signed manifest accepted.',
      [{ value: Date.parse(signed.published) / 1000 }],
    );
    gauge(
      'bundlemirror_replica_signed_manifest_stale',
      'Whether that manifest is older than [remote] manifest_max_age.',
      [{ value: signed.stale ? 1 : 0 }],
    );
  }

  if (opts.perRepo !== false) {
    gauge(
      'bundlemirror_replica_repository_state',
      'Sync state of each repository (1 for its current state).',
      status.repos.map((r) => ({ labels: { repo: r.path, state: r.state }, value: 1 })),
    );
    gauge(
      'bundlemirror_replica_repository_failures',
      'Consecutive failed attempts of each repository.',
      status.repos.map((r) => ({ labels: { repo: r.path }, value: r.failures })),
    );
    gauge(
      'bundlemirror_replica_repository_last_success_timestamp_seconds',
      'Last verified sync of each repository.',
      status.repos.flatMap((r) => {
        const t = seconds(r.lastSuccess);
        return t === null ? [] : [{ labels: { repo: r.path }, value: t }];
      }),
    );
    gauge(
      'bundlemirror_replica_repository_objects_bytes',
      'Bytes under objects/ of each repository (objects shared through a forkgroup store not included).',
      status.repos.flatMap((r) => (r.sizeBytes === null ? [] : [{ labels: { repo: r.path }, value: r.sizeBytes }])),
    );
  }
  return families;
}

/** The Prometheus text exposition (0.0.4) of a replica's status. */
export function renderMetrics(status: ReplicaStatus, opts: MetricsOptions = {}): string {
  return renderPrometheus(statusMetricFamilies(status, opts));
}

function seconds(iso: string | null): number | null {
  const ms = iso === null ? NaN : Date.parse(iso);
  return Number.isNaN(ms) ? null : ms / 1000;
}
