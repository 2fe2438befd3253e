/**
 * Where does an in-process run spend its time? Wraps child_process.spawn
 * (for this process only, bench use only) and records every git process:
 * its subcommand and how long it ran. Built-in ESM bindings are live, so
 * syncBuiltinESMExports() makes src/git/exec.ts see the wrapper too.
 */
import cp from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';

export interface GitSpan {
  cmd: string;
  ms: number;
}

const spans: GitSpan[] = [];
let installed = false;

export function traceGit(): void {
  if (installed) return;
  installed = true;
  const original = cp.spawn;
  const wrapped = function (this: unknown, ...args: Parameters<typeof cp.spawn>) {
    const child = (original as (...a: unknown[]) => cp.ChildProcess).apply(this, args);
    const [file, argv] = args as unknown as [string, string[] | undefined];
    if (file === 'git' && Array.isArray(argv)) {
      const start = performance.now();
      const sub = argv.filter((a) => !a.startsWith('--git-dir=')).slice(0, 2).join(' ');
      child.once('close', () => spans.push({ cmd: sub, ms: performance.now() - start }));
    }
    return child;
  };
  (cp as { spawn: unknown }).spawn = wrapped;
  syncBuiltinESMExports();
}

export function takeGitSpans(): GitSpan[] {
  return spans.splice(0, spans.length);
}

/** Total ms per git subcommand, largest first. */
export function summarizeSpans(list: GitSpan[]): { cmd: string; n: number; ms: number }[] {
  const by = new Map<string, { cmd: string; n: number; ms: number }>();
  for (const s of list) {
    const e = by.get(s.cmd) ?? { cmd: s.cmd, n: 0, ms: 0 };
    e.n += 1;
    e.ms += s.ms;
    by.set(s.cmd, e);
  }
  return [...by.values()].sort((a, b) => b.ms - a.ms);
}
