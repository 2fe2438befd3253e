/**
 * The replica's log: short lines on stderr for a person, and JSON lines in
 * `[core] log` for machines, with the level from `[core] loglevel`. A line
 * is pino's: `{"level":30,"time":MS,"pid":PID,"msg":"..."}` (levels 20
 * debug, 30 info, 40 warn, 50 error), so tools reading it as pino output
 * keep working. It is written here rather than by pino: a pull writes a few
 * lines, and loading pino cost every run some 20 ms of start-up.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { printable } from '../format/untrusted.js';
import { BundlemirrorError, HINT, isPermissionErrno, permissionError } from '../errors.js';

export interface PullLog {
  info(msg: string): void;
  debug(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  flush(): Promise<void>;
  /** Opens `[core] log` again by name, after logrotate moved it (SIGHUP). */
  reopen?(): void;
}

export interface PullLogOptions {
  file: string | null;
  level: 'info' | 'debug';
  /** Lines on stderr: 'quiet' prints warnings and errors only. */
  console: 'quiet' | 'info' | 'debug';
  /** Where console lines go (default: stderr); progress bars pass their own, so a redraw never mangles a line. */
  write?: (line: string) => void;
}

// pino's level numbers: written in the file, and the threshold for both the file and the console
const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** `[core] log`: one JSON line per message, appended with one write each (a line is never split by another writer). */
class LogFile {
  private fd: number | null;
  private warned = false;

  constructor(
    private readonly path: string,
    private readonly min: number,
  ) {
    // opened here, synchronously, so an unwritable log is a clear error before any work
    this.fd = openLogFile(path);
  }

  write(level: keyof typeof LEVEL, msg: string): void {
    if (LEVEL[level] < this.min || this.fd === null) return;
    const line = `{"level":${LEVEL[level]},"time":${Date.now()},"pid":${process.pid},"msg":${JSON.stringify(msg)}}\n`;
    try {
      writeSync(this.fd, line);
    } catch (err) {
      // a full disk or a vanished mount must not stop the mirroring: say so once on stderr
      if (!this.warned) process.stderr.write(`WARNING: cannot write the log ${this.path}: ${(err as Error).message}\n`);
      this.warned = true;
    }
  }

  /** After logrotate moved the file: the next lines go to a new file of the same name. */
  reopen(): void {
    const old = this.fd;
    try {
      this.fd = openLogFile(this.path);
      this.warned = false;
    } catch (err) {
      process.stderr.write(`WARNING: cannot reopen the log ${this.path}: ${(err as Error).message}\n`);
      return;
    }
    if (old !== null) closeSync(old);
  }
}

export function createPullLog(opts: PullLogOptions): PullLog {
  const file = opts.file ? new LogFile(opts.file, LEVEL[opts.level]) : null;
  const write = opts.write ?? ((line: string) => void process.stderr.write(line + '\n'));
  const consoleMin = opts.console === 'quiet' ? LEVEL.warn : opts.console === 'debug' ? LEVEL.debug : LEVEL.info;
  // a line may carry what an origin sent: it must not drive the terminal nor split a log line
  const emit = (level: keyof typeof LEVEL, raw: string) => {
    const msg = raw
      .split(HINT)
      .map((part) => printable(part))
      .join(HINT);
    file?.write(level, msg);
    if (LEVEL[level] >= consoleMin)
      write(`${level === 'info' || level === 'debug' ? '' : level.toUpperCase() + ': '}${msg}`);
  };
  return {
    info: (m) => emit('info', m),
    debug: (m) => emit('debug', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    reopen: () => file?.reopen(),
    // every line is written when it is logged
    flush: async () => {},
  };
}

function openLogFile(path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a');
  } catch (err) {
    if (isPermissionErrno(err)) throw permissionError(err);
    throw new BundlemirrorError('E_CONFIG', `cannot open the log file ${path}: ${(err as Error).message}`, {
      hint: 'check [core] log',
      cause: err,
    });
  }
}

/** A log that keeps lines in memory (tests, and library callers that want the text). */
export function memoryLog(lines: string[] = []): PullLog & { lines: string[] } {
  const push = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  return {
    lines,
    info: push('info'),
    debug: push('debug'),
    warn: push('warn'),
    error: push('error'),
    flush: async () => {},
  };
}
