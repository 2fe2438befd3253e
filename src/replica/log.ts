/**
 * The replica's log: short lines on stderr for a person, and JSON lines
 * (pino) in `[core] log` for machines, with the level from `[core] loglevel`.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { printable } from '../format/untrusted.js';
import { pino, type Logger } from 'pino';
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

export function createPullLog(opts: PullLogOptions): PullLog {
  let file: Logger | null = null;
  let dest: ReturnType<typeof pino.destination> | null = null;
  if (opts.file) {
    // opened here, synchronously, so an unwritable log is a clear error before any work (pino would
    // report it later as an unhandled 'error' event)
    closeSync(openLogFile(opts.file));
    // by name, not by descriptor, so that reopen() after a rotation writes to the new file
    dest = pino.destination({ dest: opts.file, append: true, sync: false });
    dest.on('error', (err: Error) =>
      process.stderr.write(`WARNING: cannot write the log ${opts.file}: ${err.message}\n`),
    );
    file = pino({ level: opts.level, base: { pid: process.pid } }, dest);
  }
  const write = opts.write ?? ((line: string) => void process.stderr.write(line + '\n'));
  const rank = { debug: 0, info: 1, warn: 2, error: 3 } as const;
  const consoleMin = opts.console === 'quiet' ? rank.warn : opts.console === 'debug' ? rank.debug : rank.info;
  // a line may carry what an origin sent: it must not drive the terminal nor split a log line
  const emit = (level: keyof typeof rank, raw: string) => {
    const msg = raw
      .split(HINT)
      .map((part) => printable(part))
      .join(HINT);
    file?.[level](msg);
    if (rank[level] >= consoleMin)
      write(`${level === 'info' || level === 'debug' ? '' : level.toUpperCase() + ': '}${msg}`);
  };
  return {
    info: (m) => emit('info', m),
    debug: (m) => emit('debug', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    reopen: () => dest?.reopen(),
    flush: () =>
      new Promise<void>((resolve) => {
        if (!file) return resolve();
        file.flush(() => resolve());
      }),
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
