/**
 * Where does an in-process run spend its time? Wraps child_process.spawn
 * (for this process only, bench use only) and records every git process:
 * its subcommand and how long it ran. Built-in ESM bindings are live, so
 * syncBuiltinESMExports() makes src/git/exec.ts see the wrapper too.
 */
import cp from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import { subcommandAt } from '../../src/git/exec.js';

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
      const at = subcommandAt(argv);
      const sub = argv.slice(at, at + 2).join(' ');
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
