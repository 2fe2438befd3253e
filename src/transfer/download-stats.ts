/**
 * Process-wide download totals, for status output, /metrics and benchmarks:
 * kept apart from the download loop so readers need not load HTTP.
 */
/** Process-wide totals, for status output and benchmarks. */
export interface TransferStats {
  downloads: number;
  bytesDownloaded: number;
  bytesResumed: number;
  attempts: number;
  restarts: number;
  verifyFailures: number;
}

export const stats: TransferStats = {
  downloads: 0,
  bytesDownloaded: 0,
  bytesResumed: 0,
  attempts: 0,
  restarts: 0,
  verifyFailures: 0,
};

export function transferStats(): Readonly<TransferStats> {
  return { ...stats };
}
