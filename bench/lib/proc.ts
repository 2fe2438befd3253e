/**
 * Running what users run, as child processes, and measuring it the same way
 * for us and for the alternative: wall time from our clock, CPU time and
 * peak memory from `/usr/bin/time -v` (rusage of the process and every child
 * it waited for: git's index-pack counts for both sides). Every child has a
 * deadline; nothing here waits forever.
 */
import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const CLI = resolve(ROOT, 'bin', 'bundlemirror');
const TIME = '/usr/bin/time';

export interface Timed {
  code: number;
  wallMs: number;
  /** user + system CPU of the process tree (children that were waited for). */
  cpuMs: number;
  /** Largest resident set of any single process in the tree, bytes. */
  maxRssBytes: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Our CLI only: the node process itself, without its git children. */
  self?: { cpuMs: number; maxRssBytes: number };
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** Exit codes that are not failures. */
  okCodes?: number[];
  /** Do not throw on failure; the caller reads `code`. */
  allowFail?: boolean;
  input?: string;
  /** Feed this file to stdin (streamed). */
  stdinFile?: string;
}

/** Environment for git and our CLI: no inherited GIT_*, no prompts, fixed locale. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^GIT_/.test(k) && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', LANG: 'C', ...extra };
}

export function haveTimeCommand(): boolean {
  return existsSync(TIME);
}

/** Runs `cmd args` under /usr/bin/time -v (if present) and reports wall, CPU and peak RSS. */
export async function timed(cmd: string, args: string[], opts: RunOptions): Promise<Timed> {
  const useTime = haveTimeCommand();
  const argv = useTime ? ['-v', cmd, ...args] : args;
  const bin = useTime ? TIME : cmd;
  const start = process.hrtime.bigint();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, argv, {
      cwd: opts.cwd,
      env: opts.env ?? cleanEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      if (stdout.length < 1 << 20) stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      // keep the tail: /usr/bin/time's report comes last
      stderr = (stderr + c).slice(-(1 << 20));
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
      const r = parseTime(stderr);
      const result: Timed = {
        code: code ?? 128,
        wallMs,
        cpuMs: r.cpuMs,
        maxRssBytes: r.maxRssBytes,
        stdout,
        stderr: r.rest,
        timedOut,
      };
      const ok = result.code === 0 || (opts.okCodes ?? []).includes(result.code);
      if (!ok && !opts.allowFail) {
        reject(
          new Error(
            `${cmd} ${args.join(' ')} ${timedOut ? `timed out after ${opts.timeoutMs} ms` : `exited ${result.code}`}: ${result.stderr.slice(-1500)}`,
          ),
        );
      } else resolvePromise(result);
    });
    if (opts.stdinFile)
      createReadStream(opts.stdinFile)
        .on('error', () => child.stdin.destroy())
        .pipe(child.stdin);
    else child.stdin.end(opts.input ?? '');
    child.stdin.on('error', () => {});
  });
}

function parseTime(stderr: string): { cpuMs: number; maxRssBytes: number; rest: string } {
  const at = stderr.lastIndexOf('\tCommand being timed:');
  if (at < 0) return { cpuMs: NaN, maxRssBytes: NaN, rest: stderr };
  const report = stderr.slice(at);
  const num = (re: RegExp): number => Number(re.exec(report)?.[1] ?? NaN);
  return {
    cpuMs: (num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/)) * 1000,
    maxRssBytes: num(/Maximum resident set size \(kbytes\): (\d+)/) * 1024,
    rest: stderr.slice(0, at),
  };
}

/** Our CLI, as a user runs it (`bin/bundlemirror`, TypeScript through tsx), plus a preload that reports its own rusage. */
export async function bundlemirror(args: string[], opts: RunOptions): Promise<Timed> {
  const file = join(tmpdir(), `bm-bench-rusage-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
  const env = { ...(opts.env ?? cleanEnv()), BENCH_RUSAGE_FILE: file };
  try {
    const r = await timed(process.execPath, ['--import', PRELOAD, CLI, ...args], { ...opts, env });
    const u = JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) as {
      userCPUTime: number;
      systemCPUTime: number;
      maxRSS: number;
    } | null;
    if (u) r.self = { cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, maxRssBytes: u.maxRSS * 1024 };
    return r;
  } finally {
    await rm(file, { force: true });
  }
}

const PRELOAD = new URL('./rusage-preload.mjs', import.meta.url).href;

export function gitTimed(args: string[], opts: RunOptions): Promise<Timed> {
  return timed('git', args, opts);
}
