/**
 * Download progress: the numbers a download reports, a rate estimate, and a
 * reporter that shows them to a person. On a terminal that is a bar per file
 * (cli-progress); in a log (cron, systemd) it is a plain line per file at
 * most every few seconds, so a day-long resume does not flood the journal.
 * Optional: downloads take an `onProgress` callback and know nothing of this.
 */
import { formatBytes } from '../format/bytes.js';
import cliProgress from 'cli-progress';

export interface DownloadProgress {
  /** Bytes of the file on disk now (resumed bytes included). */
  received: number;
  /** The expected size of the file. */
  total: number;
  /** Bytes that were already on disk when this download started and were kept. */
  resumedFrom: number;
  /** Recent transfer rate over the wire, bytes per second. */
  rate: number;
}

/** Exponentially weighted rate, so one burst or one stall does not swing the ETA. */
export class RateMeter {
  private rate = 0;
  private lastAt: number;
  private pending = 0;

  constructor(
    private readonly windowMs = 3_000,
    private readonly now: () => number = Date.now,
  ) {
    this.lastAt = now();
  }

  add(bytes: number): void {
    this.pending += bytes;
  }

  /** Bytes per second, folding in what arrived since the last call. */
  current(): number {
    const t = this.now();
    const dt = t - this.lastAt;
    if (dt <= 0) return this.rate;
    const instant = (this.pending * 1000) / dt;
    const alpha = 1 - Math.exp(-dt / this.windowMs);
    this.rate = this.rate === 0 ? instant : this.rate + alpha * (instant - this.rate);
    this.pending = 0;
    this.lastAt = t;
    return this.rate;
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One file's progress display. */
export interface FileProgress {
  update(p: DownloadProgress): void;
  /** Ends the display for this file. */
  finish(outcome: 'done' | 'failed', detail?: string): void;
}

export interface ProgressReporter {
  /** Starts showing a file; pass `fp.update` as the download's onProgress. */
  start(label: string, total: number): FileProgress;
  /** Stops all displays (restores the terminal). */
  stop(): void;
}

export interface ReporterOptions {
  /** Where bars and lines go; default process.stderr. */
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Force bars (true) or plain lines (false); default: bars when `stream` is a TTY. */
  tty?: boolean;
  /** Plain mode: at most one line per file this often (default 5 s). */
  lineIntervalMs?: number;
  /** Plain mode: where lines go; default writes to `stream`. */
  log?: (line: string) => void;
  now?: () => number;
}

export function createProgressReporter(opts: ReporterOptions = {}): ProgressReporter {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? Boolean((stream as NodeJS.WriteStream).isTTY);
  return tty ? new BarReporter(stream) : new LineReporter(opts, stream);
}

function describe(p: DownloadProgress): { done: string; size: string; rate: string; eta: string; resumed: string } {
  const left = p.total - p.received;
  return {
    done: formatBytes(p.received),
    size: formatBytes(p.total),
    rate: `${formatBytes(p.rate)}/s`,
    eta: p.rate > 0 ? formatDuration(left / p.rate) : '?',
    resumed: p.resumedFrom > 0 ? ` (resumed from ${formatBytes(p.resumedFrom)})` : '',
  };
}

class BarReporter implements ProgressReporter {
  private readonly multibar: cliProgress.MultiBar;

  constructor(stream: NodeJS.WritableStream) {
    this.multibar = new cliProgress.MultiBar(
      {
        stream,
        // Payload names carry a `bm` prefix: cli-progress fills its own {eta}, {value}... first.
        format: '{bmLabel} |{bar}| {percentage}% {bmDone}/{bmSize} {bmRate} ETA {bmEta}{bmResumed}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        barsize: 30,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  start(label: string, total: number): FileProgress {
    const payload = (p: DownloadProgress): Record<string, string> => {
      const d = describe(p);
      return { bmLabel: label, bmDone: d.done, bmSize: d.size, bmRate: d.rate, bmEta: d.eta, bmResumed: d.resumed };
    };
    let last: DownloadProgress = { received: 0, total, resumedFrom: 0, rate: 0 };
    const bar = this.multibar.create(Math.max(total, 1), 0, payload(last));
    return {
      update: (p) => {
        last = p;
        bar.update(p.received, payload(p));
      },
      finish: (outcome, detail) => {
        // Said on the bar itself: MultiBar.log() output only appears at the next redraw.
        if (outcome === 'failed') bar.update(last.received, { ...payload(last), bmResumed: ` FAILED${detail ? `: ${detail}` : ''}` });
        bar.stop();
      },
    };
  }

  stop(): void {
    this.multibar.stop();
  }
}

class LineReporter implements ProgressReporter {
  private readonly log: (line: string) => void;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(opts: ReporterOptions, stream: NodeJS.WritableStream) {
    this.log = opts.log ?? ((line) => void stream.write(line + '\n'));
    this.intervalMs = opts.lineIntervalMs ?? 5_000;
    this.now = opts.now ?? Date.now;
  }

  start(label: string, total: number): FileProgress {
    let lastLine = this.now();
    let last: DownloadProgress = { received: 0, total, resumedFrom: 0, rate: 0 };
    return {
      update: (p) => {
        last = p;
        const t = this.now();
        if (t - lastLine < this.intervalMs) return;
        lastLine = t;
        const d = describe(p);
        const pct = p.total > 0 ? Math.floor((p.received * 100) / p.total) : 100;
        this.log(`${label}: ${pct}% ${d.done}/${d.size} at ${d.rate}, ETA ${d.eta}${d.resumed}`);
      },
      finish: (outcome, detail) => {
        const d = describe(last);
        this.log(outcome === 'done' ? `${label}: done, ${d.size}${d.resumed}` : `${label}: failed at ${d.done}/${d.size}${detail ? `: ${detail}` : ''}`);
      },
    };
  }

  stop(): void {}
}
