/**
 * A real `bundlemirror pull --daemon` process for tests: its stderr is
 * collected, `waitFor` waits (bounded) for a line, `stop` sends a signal and
 * waits (bounded) for the exit. The teardown kills it if a test left it
 * running.
 */
import { spawn } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { BIN } from './cli.js';

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonProcess {
  readonly pid: number;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the first match of `re` in stderr from offset `from` (default 0); rejects after `timeoutMs` or if the process exits. */
  waitFor(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<RegExpMatchArray>;
  signal(sig: NodeJS.Signals): void;
  /** Sends `sig` and waits for the exit; SIGKILL after `timeoutMs` (then the result says so). */
  stop(sig?: NodeJS.Signals, timeoutMs?: number): Promise<DaemonExit & { killed: boolean }>;
  readonly exited: Promise<DaemonExit>;
}

export function startDaemonProcess(t: ExecutionContext, config: string, ...args: string[]): DaemonProcess {
  const child = spawn(process.execPath, [BIN, 'pull', '-c', config, '--daemon', '--no-progress', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  const listeners = new Set<() => void>();
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    err += c;
    for (const l of listeners) l();
  });
  child.stdout.resume();
  const exited = new Promise<DaemonExit>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const l of listeners) l();
  });
  t.teardown(() => {
    if (!done) child.kill('SIGKILL');
  });

  const waitFor = (re: RegExp, opts: { from?: number; timeoutMs?: number } = {}) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = err.slice(opts.from ?? 0).match(re);
        if (m) finish(() => resolve(m));
        else if (done) finish(() => reject(new Error(`daemon exited before ${re} appeared; stderr:\n${err}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`timed out waiting for ${re}; stderr:\n${err}`))),
        opts.timeoutMs ?? 60_000,
      );
      const finish = (f: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        f();
      };
      listeners.add(check);
      check();
    });

  return {
    pid: child.pid!,
    stderr: () => err,
    waitFor,
    signal: (sig) => void child.kill(sig),
    exited,
    async stop(sig = 'SIGTERM', timeoutMs = 20_000) {
      if (!done) child.kill(sig);
      let timer: NodeJS.Timeout | undefined;
      const killed = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve(true);
          }, timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      return { ...(await exited), killed };
    },
  };
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined; at most `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  { timeoutMs = 30_000, intervalMs = 25 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / intervalMs) + 1; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
