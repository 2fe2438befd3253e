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
      const sub = subcommand(argv);
      child.once('close', () => spans.push({ cmd: sub, ms: performance.now() - start }));
    }
    return child;
  };
  (cp as { spawn: unknown }).spawn = wrapped;
  syncBuiltinESMExports();
}

/** The subcommand and its first argument, past git's own options (`-c KEY=VALUE`, `--git-dir=DIR`, ...). */
function subcommand(argv: readonly string[]): string {
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-')) i += argv[i] === '-c' || argv[i] === '-C' ? 2 : 1;
  return argv.slice(i, i + 2).join(' ');
}

export function takeGitSpans(): GitSpan[] {
  return spans.splice(0, spans.length);
}
