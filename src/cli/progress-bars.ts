import { createProgressReporter, type DownloadProgress, type FileProgress, type ProgressReporter } from '../transfer/progress.js';

/** One bar (or log line series) per file, started on its first progress event and finished once. */
export function progressBars(opts: { log?: (line: string) => void } = {}): {
  update: (key: string, label: string, p: DownloadProgress) => void;
  stop: () => void;
  reporter: ProgressReporter;
} {
  const reporter = createProgressReporter(opts.log ? { log: opts.log } : {});
  const bars = new Map<string, FileProgress | null>();
  return {
    reporter,
    stop: () => reporter.stop(),
    update(key, label, p) {
      let bar = bars.get(key);
      if (bar === null) return;
      if (!bar) bars.set(key, (bar = reporter.start(label, p.total)));
      bar.update(p);
      if (p.received >= p.total) {
        bar.finish('done');
        bars.set(key, null);
      }
    },
  };
}
