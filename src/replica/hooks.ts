/**
 * grok-pull's hooks, run the way grokmirror runs them so existing hook
 * scripts keep working:
 *
 * - each config value holds one command per line; a line is split into
 *   words like Python's `shlex.shlex(line, posix=True)` with
 *   `whitespace_split` (quotes, backslash escapes, and `#` starting a
 *   comment), after expanding a leading `~`;
 * - `post_update_hook` runs after each repository whose refs changed, with
 *   the repository's full path appended as the last argument;
 * - `post_clone_complete_hook` runs once the new clones of a run are done,
 *   with no extra argument and their full paths on stdin, one per line;
 * - `post_work_complete_hook` runs after a run that did any work, with no
 *   argument and no stdin;
 * - a hook that fails, or cannot start, is logged and reported; it never
 *   fails the repository or the run (grokmirror ignores hook exit codes).
 *
 * Unlike grokmirror, a hook runs under a time limit (`[bundlemirror]
 * hook_timeout`, 0 for none) so a hung script cannot stall mirroring; on
 * timeout its whole process group is terminated.
 */
import { spawn } from 'node:child_process';
import { access, constants as fsConstants } from 'node:fs';
import { promisify } from 'node:util';
import { homedir } from 'node:os';
import { shlexSplit } from '../config/shlex.js';

const accessAsync = promisify(access);

export type HookKind = 'post_update_hook' | 'post_clone_complete_hook' | 'post_work_complete_hook' | 'report_hook';

/** Any logger with info and warn taking a message (a PullLog fits). */
export interface HookLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface HookRunOptions {
  /** Text written to the hook's stdin (stdin is closed empty otherwise). */
  stdin?: string;
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  /** 0 means no limit. Default: one hour. */
  timeoutMs?: number;
  /** Between SIGTERM and SIGKILL on timeout or abort. */
  killGraceMs?: number;
  log?: HookLogger;
  /** Stops the hook (its process group) early, e.g. on shutdown. */
  signal?: AbortSignal;
  cwd?: string;
}

export interface HookResult {
  kind: HookKind;
  /** The command line as configured. */
  command: string;
  /** What was executed (command words plus appended arguments). */
  argv: string[];
  /** Started, exited 0, within the time limit. */
  ok: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Captured output (at most 1 MiB each, trimmed). */
  stdout: string;
  stderr: string;
  durationMs: number;
  /** Why the hook could not run (not executable, not found, bad quoting). */
  error?: string;
}

const DEFAULT_TIMEOUT_MS = 3600_000;
const MAX_OUTPUT = 1 << 20;

/** Expands a leading `~` (as grokmirror's os.path.expanduser on the whole line) and splits. */
export function hookArgv(command: string): string[] {
  let line = command.trim();
  if (line === '~' || line.startsWith('~/') || /^~[\s]/.test(line)) line = homedir() + line.slice(1);
  return shlexSplit(line);
}

/** Runs one configured hook line with `args` appended. Never throws for hook failures. */
export async function runHook(
  kind: HookKind,
  command: string,
  args: readonly string[],
  opts: HookRunOptions = {},
): Promise<HookResult> {
  const started = Date.now();
  const base: Omit<HookResult, 'ok' | 'argv' | 'durationMs'> = {
    kind,
    command,
    exitCode: null,
    signal: null,
    timedOut: false,
    stdout: '',
    stderr: '',
  };
  let argv: string[];
  try {
    argv = [...hookArgv(command), ...args];
  } catch (err) {
    return finish(opts, {
      ...base,
      argv: [],
      ok: false,
      durationMs: 0,
      error: `cannot split ${JSON.stringify(command)}: ${(err as Error).message}`,
    });
  }
  if (argv.length === 0) return finish(opts, { ...base, argv, ok: false, durationMs: 0, error: 'empty command' });
  const program = argv[0]!;
  if (program.includes('/')) {
    try {
      await accessAsync(program, fsConstants.X_OK);
    } catch {
      return finish(opts, {
        ...base,
        argv,
        ok: false,
        durationMs: 0,
        error: `${program} is not executable (or does not exist)`,
      });
    }
  }
  opts.log?.info(`${kind}: running ${argv.join(' ')}`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const grace = opts.killGraceMs ?? 5000;

  return new Promise<HookResult>((resolvePromise) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    const timers: NodeJS.Timeout[] = [];

    const child = spawn(program, argv.slice(1), {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // its own process group, so a timeout stops the scripts it started too
      detached: true,
    });

    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const stop = (): void => {
      killGroup('SIGTERM');
      timers.push(setTimeout(() => killGroup('SIGKILL'), grace));
    };
    const done = (result: Omit<HookResult, 'durationMs'>): void => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      opts.signal?.removeEventListener('abort', onAbort);
      child.stdout.destroy();
      child.stderr.destroy();
      resolvePromise(finish(opts, { ...result, durationMs: Date.now() - started }));
    };
    const onAbort = (): void => stop();

    if (timeoutMs > 0) {
      timers.push(
        setTimeout(() => {
          timedOut = true;
          stop();
        }, timeoutMs),
      );
    }
    if (opts.signal) {
      if (opts.signal.aborted) stop();
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }

    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += c;
    });
    child.stderr.on('data', (c: string) => {
      if (stderr.length < MAX_OUTPUT) stderr += c;
    });
    child.stdin.on('error', () => {
      /* the hook need not read its stdin */
    });
    child.stdin.end(opts.stdin ?? '');

    const result = (): Omit<HookResult, 'durationMs'> => ({
      ...base,
      argv,
      exitCode: exitInfo?.code ?? null,
      signal: exitInfo?.signal ?? null,
      timedOut,
      ok: !timedOut && exitInfo?.code === 0,
      stdout: stdout.slice(0, MAX_OUTPUT).trim(),
      stderr: stderr.slice(0, MAX_OUTPUT).trim(),
    });

    child.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? `${program} not found` : err.message;
      done({ ...result(), ok: false, error: why });
    });
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      // a background process the hook left behind may hold its output open; do not wait for it forever
      timers.push(setTimeout(() => done(result()), 2000));
    });
    child.on('close', (code, signal) => {
      exitInfo ??= { code, signal };
      done(result());
    });
  });
}

/** Runs every configured line of a hook, one after another (as grokmirror does). */
export async function runHooks(
  kind: HookKind,
  commands: readonly string[],
  args: readonly string[],
  opts: HookRunOptions = {},
): Promise<HookResult[]> {
  const results: HookResult[] = [];
  for (const command of commands) {
    if (command.trim() === '') continue;
    results.push(await runHook(kind, command, args, opts));
  }
  return results;
}

/** After a repository's refs changed: each hook gets the repository's full path as last argument. */
export function runPostUpdateHooks(
  commands: readonly string[],
  repoFullPath: string,
  opts: HookRunOptions = {},
): Promise<HookResult[]> {
  return runHooks('post_update_hook', commands, [repoFullPath], opts);
}

/** After the run's new clones are done: full paths on stdin, newline-terminated; no arguments. */
export function runPostCloneCompleteHooks(
  commands: readonly string[],
  clonedFullPaths: readonly string[],
  opts: HookRunOptions = {},
): Promise<HookResult[]> {
  if (clonedFullPaths.length === 0) return Promise.resolve([]);
  return runHooks('post_clone_complete_hook', commands, [], { ...opts, stdin: clonedFullPaths.join('\n') + '\n' });
}

/** After a run that did any work: no arguments, no stdin. */
export function runPostWorkCompleteHooks(
  commands: readonly string[],
  opts: HookRunOptions = {},
): Promise<HookResult[]> {
  return runHooks('post_work_complete_hook', commands, [], opts);
}

function finish(opts: HookRunOptions, result: HookResult): HookResult {
  const log = opts.log;
  if (log) {
    const what = `${result.kind} ${result.argv.join(' ') || result.command}`;
    if (result.stdout) log.info(`${what}: stdout: ${result.stdout}`);
    if (result.stderr) log.warn(`${what}: stderr: ${result.stderr}`);
    if (result.error) log.warn(`${what}: not run: ${result.error}`);
    else if (result.timedOut) log.warn(`${what}: killed after ${Math.round(result.durationMs / 1000)}s (hook_timeout)`);
    else if (!result.ok) log.warn(`${what}: exited with ${result.exitCode ?? result.signal}`);
  }
  return result;
}
