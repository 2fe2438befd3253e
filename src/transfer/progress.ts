/**
 * Download progress: the numbers a download reports, a rate estimate, and a
 * reporter that shows them to a person. On a terminal that is a line per
 * file, redrawn in place and cut to the terminal's width; in a log (cron,
 * systemd) it is a plain line per file at most every few seconds, so a
 * day-long resume does not flood the journal. Optional: downloads take an
 * `onProgress` callback and know nothing of this.
 *
 * The line itself is a pure function of the numbers and the width
 * (`renderProgressLine`), so what fits where is tested without a terminal.
 */
import { formatBytes } from '../format/bytes.js';
import { formatDuration } from '../format/duration.js';

export interface DownloadProgress {
  /** Bytes of the file on disk now (resumed bytes included). */
  received: number;
  /** The expected size of the file. */
  total: number;
  /** Bytes that were already on disk when this download started and were kept. */
  resumedFrom: number;
  /** Recent transfer rate over the wire, bytes per second; 0 while unknown. */
  rate: number;
}

/**
 * Bytes per second over a sliding window. Until `minSpanMs` have passed the
 * rate is unknown (0): the first chunks come from socket buffers in a burst,
 * and a rate measured over them promised 60 MiB/s on a 3 MiB/s link. Within
 * the first window it is the average since the start; after that, over the
 * last `windowMs`, so a stall shows as a falling rate.
 */
export class RateMeter {
  private total = 0;
  /** (time, cumulative bytes) samples, oldest first, at most one per SAMPLE_MS. */
  private samples: { t: number; bytes: number }[];
  private static readonly SAMPLE_MS = 250;

  constructor(
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
    private readonly minSpanMs = 1_000,
  ) {
    this.samples = [{ t: now(), bytes: 0 }];
  }

  add(bytes: number): void {
    this.total += bytes;
    const t = this.now();
    const last = this.samples[this.samples.length - 1]!;
    if (t - last.t >= RateMeter.SAMPLE_MS) this.samples.push({ t, bytes: this.total });
  }

  /** Bytes per second over the window, or 0 while too little time has passed to tell. */
  current(): number {
    const t = this.now();
    // keep one sample at or before the window's start, so the window is always covered
    while (this.samples.length > 1 && this.samples[1]!.t <= t - this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    const span = t - first.t;
    if (span < this.minSpanMs) return 0;
    return ((this.total - first.bytes) * 1000) / span;
  }
}

/** What one progress line shows. */
export interface ProgressLine extends DownloadProgress {
  label: string;
}

const MIN_LABEL = 10;
const MIN_BAR = 8;
const MAX_BAR = 30;

/**
 * One line for a terminal `width` columns wide, never longer than width - 1
 * (a line that fills the last column wraps on some terminals and breaks the
 * redraw). When space runs short it gives up, in order: the bar's length
 * down to 8, the label down to 10 characters (cut in the middle), the sizes,
 * the "resumed from", the rate, the ETA, the bar; the percentage stays.
 */
export function renderProgressLine(p: ProgressLine, width: number): string {
  const max = Math.max(width - 1, 1);
  const pct = `${p.total > 0 ? Math.min(100, Math.floor((p.received * 100) / p.total)) : 100}%`.padStart(4);
  const sizes = `${formatBytes(p.received)}/${formatBytes(p.total)}`;
  const rate = p.rate > 0 ? `${formatBytes(p.rate)}/s` : '-/s';
  const eta = `ETA ${p.rate > 0 ? formatDuration((p.total - p.received) / p.rate) : '?'}`;
  const resumed = p.resumedFrom > 0 ? `resumed from ${formatBytes(p.resumedFrom)}` : '';
  const tails = [[pct, sizes, rate, eta, resumed], [pct, rate, eta, resumed], [pct, rate, eta], [pct, eta], [pct]].map(
    (parts) => parts.filter((x) => x !== '').join(' '),
  );
  for (const tail of tails) {
    const room = max - tail.length - 1; // one space before the tail
    const labelLen = Math.min(p.label.length, Math.max(MIN_LABEL, room - (MIN_BAR + 2) - 1));
    const barLen = Math.min(MAX_BAR, room - labelLen - 1 - 2);
    if (barLen < MIN_BAR) continue;
    return `${shorten(p.label, labelLen)} [${bar(p.received, p.total, barLen)}] ${tail}`;
  }
  // no room for a bar at all: the label and the percentage, as much as fits
  return `${shorten(p.label, Math.max(max - pct.length - 1, 1))} ${pct}`.slice(0, max);
}

function bar(received: number, total: number, len: number): string {
  const filled = total > 0 ? Math.min(len, Math.floor((received * len) / total)) : len;
  return '#'.repeat(filled) + '-'.repeat(len - filled);
}

/** Cuts the middle out of a label that is too long: the repository's start and the file's end stay readable. */
export function shorten(text: string, len: number): string {
  if (text.length <= len) return text;
  if (len <= 1) return text.slice(0, len);
  const head = Math.ceil((len - 1) / 2);
  const tail = len - 1 - head;
  return `${text.slice(0, head)}…${tail > 0 ? text.slice(-tail) : ''}`;
}

/** The line a file ends with (terminal and log alike). */
export function renderFinalLine(
  label: string,
  p: DownloadProgress,
  outcome: 'done' | 'failed',
  detail?: string,
): string {
  const resumed = p.resumedFrom > 0 ? ` (resumed from ${formatBytes(p.resumedFrom)})` : '';
  return outcome === 'done'
    ? `${label}: done, ${formatBytes(p.total)}${resumed}`
    : `${label}: failed at ${formatBytes(p.received)}/${formatBytes(p.total)}${detail ? `: ${detail}` : ''}`;
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
  /** Prints a line of text above the displays (a warning, an error), which no redraw overwrites. */
  log(line: string): void;
  /** Stops all displays, leaving no bar behind. */
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
  /** Terminal mode: the width when the stream does not say (default 80). */
  columns?: number;
}

export function createProgressReporter(opts: ReporterOptions = {}): ProgressReporter {
  const stream = opts.stream ?? process.stderr;
  const tty = opts.tty ?? Boolean((stream as NodeJS.WriteStream).isTTY);
  return tty ? new TerminalReporter(stream, opts) : new LineReporter(opts, stream);
}

const ESC = '\u001b[';
/** Redraws at most this often; finishing a file or a log line redraws at once. */
const REDRAW_MS = 200;

/**
 * Lines redrawn in place at the bottom of the terminal. Every write first
 * moves up over the lines it drew and clears to the end of the screen, so a
 * finished file's last line, a log line or an error is printed on clean
 * ground and no fragment of a longer earlier bar survives.
 */
class TerminalReporter implements ProgressReporter {
  private readonly active = new Map<number, ProgressLine>();
  private drawn = 0;
  private nextId = 0;
  private lastDraw = 0;
  private readonly now: () => number;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly opts: ReporterOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  private width(): number {
    return (this.stream as NodeJS.WriteStream).columns || this.opts.columns || 80;
  }

  private redraw(text = ''): void {
    const width = this.width();
    let out = this.drawn > 0 ? `\r${ESC}${this.drawn}A${ESC}J` : `\r${ESC}J`;
    out += text;
    const lines = [...this.active.values()].map((l) => renderProgressLine(l, width));
    for (const line of lines) out += `${line}\n`;
    this.drawn = lines.length;
    this.lastDraw = this.now();
    this.stream.write(out);
  }

  start(label: string, total: number): FileProgress {
    const id = this.nextId++;
    const state: ProgressLine = { label, received: 0, total, resumedFrom: 0, rate: 0 };
    this.active.set(id, state);
    this.redraw();
    return {
      update: (p) => {
        if (!this.active.has(id)) return;
        Object.assign(state, p);
        if (this.now() - this.lastDraw >= REDRAW_MS) this.redraw();
      },
      finish: (outcome, detail) => {
        if (!this.active.delete(id)) return;
        this.redraw(`${renderFinalLine(label, state, outcome, detail)}\n`);
      },
    };
  }

  log(line: string): void {
    this.redraw(`${line}\n`);
  }

  stop(): void {
    this.active.clear();
    if (this.drawn > 0) this.redraw();
  }
}

class LineReporter implements ProgressReporter {
  private readonly print: (line: string) => void;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(opts: ReporterOptions, stream: NodeJS.WritableStream) {
    this.print = opts.log ?? ((line) => void stream.write(line + '\n'));
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
        const pct = p.total > 0 ? Math.floor((p.received * 100) / p.total) : 100;
        const eta = p.rate > 0 ? formatDuration((p.total - p.received) / p.rate) : '?';
        const resumed = p.resumedFrom > 0 ? ` (resumed from ${formatBytes(p.resumedFrom)})` : '';
        this.print(
          `${label}: ${pct}% ${formatBytes(p.received)}/${formatBytes(p.total)} at ${formatBytes(p.rate)}/s, ETA ${eta}${resumed}`,
        );
      },
      finish: (outcome, detail) => this.print(renderFinalLine(label, last, outcome, detail)),
    };
  }

  log(line: string): void {
    this.print(line);
  }

  stop(): void {}
}
