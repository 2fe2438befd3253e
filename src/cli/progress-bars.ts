import { posix } from 'node:path';
import { printable } from '../format/untrusted.js';
import {
  createProgressReporter,
  type DownloadProgress,
  type FileProgress,
  type ProgressReporter,
  type ReporterOptions,
} from '../transfer/progress.js';

/** One bar (or log line series) per file, started on its first progress event and finished once. */
export function progressBars(opts: ReporterOptions = {}): {
  update: (key: string, label: string, p: DownloadProgress) => void;
  stop: () => void;
  /** A line of text above the bars (a warning, a wait), without a redraw mangling either. */
  log: (line: string) => void;
  reporter: ProgressReporter;
} {
  const reporter = createProgressReporter(opts);
  const bars = new Map<string, FileProgress | null>();
  return {
    reporter,
    stop: () => reporter.stop(),
    log: (line) => reporter.log(line),
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

/**
 * For a process without a terminal (the daemon, cron): a plain line per
 * file about every 10 s with percent, rate and ETA, then one when it is done.
 */
export function progressLines(log: (line: string) => void): (repo: string, file: string, p: DownloadProgress) => void {
  const lines = progressBars({ tty: false, log, lineIntervalMs: 10_000 });
  return (repo, file, p) => lines.update(`${repo}\0${file}`, fileLabel(repo, file), p);
}

/**
 * A short name for a bundle in a repository's index: `/pub/a.git 1f3a9c2e07bd`,
 * and for one a forkgroup member borrows from its parent (`../../linux.git/<sha>.bundle`)
 * the repository it lives in: `/pub/forks/b.git 1f3a9c2e07bd (from /pub/linux.git)`.
 */
export function fileLabel(repo: string, file: string): string {
  return printable(rawLabel(repo, file));
}

function rawLabel(repo: string, file: string): string {
  const name = posix
    .basename(file)
    .replace(/\.bundle$/, '')
    .slice(0, 12);
  if (!file.includes('/')) return `${repo} ${name}`;
  const home = posix.dirname(posix.join(repo, file));
  return home === repo ? `${repo} ${name}` : `${repo} ${name} (from ${home})`;
}
