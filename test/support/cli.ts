/** Runs the real `bin/bundlemirror` as a user would, capturing output and exit status. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { ExecutionContext } from 'ava';
import { VERSION } from '../../src/version.js';

export const BIN = fileURLToPath(new URL('../../bin/bundlemirror', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The base URL `serve` names on stderr once it listens (`serving … at http://HOST:PORT/`); undefined before that. */
export function servedUrl(stderr: string): string | undefined {
  return /serving .* at (http:\/\/[^/\s]+)\//.exec(stderr)?.[1];
}

/** `exec`: run this program with `args` instead of the CLI (a wrapper such as setpriv that then starts it). */
export function runCli(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; exec?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.exec ?? process.execPath, opts.exec ? args : [BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

export interface CliProcess {
  readonly pid: number;
  output(): { stdout: string; stderr: string };
  signal(sig: NodeJS.Signals): void;
  /** Resolves at the exit; the test's teardown kills a process still running. */
  readonly done: Promise<CliResult & { signal: NodeJS.Signals | null }>;
}

/** Starts the real CLI and hands back the process, for tests that signal it or watch it work. */
export function startCli(
  t: { teardown(fn: () => void): void },
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, signal, stdout, stderr });
    }),
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { pid: child.pid!, output: () => ({ stdout, stderr }), signal: (sig) => void child.kill(sig), done };
}

/** A command's option words as --help spells them (short and long), from the command's own registration. */
export function optionWords(register: (program: Command) => void): string[] {
  const program = new Command();
  register(program);
  return program.commands[0]!.options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined));
}

/** Words every command reads alike and no hand reader takes: help, version, the end of options, a lone dash. */
export const GENERIC_ODD_WORDS = ['-h', '--help', '-V', '--version', '--', '-'];

/**
 * Parses `args` as main.ts's program does when it holds only the command
 * `register` adds, nothing printed; the command's action gets `take`
 * instead of its own. False when commander refuses the line (a usage error,
 * help, a value an option's parser refused).
 */
export async function commanderParses(
  register: (program: Command) => void,
  command: string,
  args: string[],
  take: (...actionArgs: never[]) => void,
): Promise<boolean> {
  const program = new Command()
    .name('bundlemirror')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
  register(program);
  program.commands[0]!.action(take as (...a: unknown[]) => void);
  try {
    await program.parseAsync([command, ...args], { from: 'user' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A hand reader of a command line held to commander: on every line, whenever
 * the reader answers it must answer what commander makes of the line; and the
 * lines must fall on every side of the boundary (read by hand, left to
 * commander, refused), or the comparison proved little.
 */
export async function heldToCommander<T>(
  t: ExecutionContext,
  command: string,
  lines: Iterable<string[]>,
  mine: (args: string[]) => T | null,
  theirs: (args: string[]) => Promise<T | null>,
  refused: (theirs: T | null) => boolean = (x) => x === null,
): Promise<void> {
  let fast = 0;
  let declined = 0;
  let refusals = 0;
  for (const args of lines) {
    const hand = mine(args);
    const commander = await theirs(args);
    if (hand !== null) {
      fast++;
      t.deepEqual(hand, commander, `${command} ${JSON.stringify(args)}`);
    } else if (refused(commander)) refusals++;
    else declined++;
  }
  t.true(
    fast > 300 && declined > 100 && refusals > 300,
    `${fast} read by hand, ${declined} left to commander, ${refusals} refused`,
  );
}
