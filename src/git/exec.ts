/**
 * The only place in the project that starts a git process.
 *
 * Every call gets a clean environment: variables a git hook inherits
 * (GIT_DIR, GIT_OBJECT_DIRECTORY, GIT_QUARANTINE_PATH, ...) would otherwise
 * redirect our commands to the wrong repository when `publish` runs from a
 * post-receive hook. Prompts are disabled so a replica never hangs waiting
 * for a password, and the locale is fixed so messages we parse stay stable.
 */
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { BundlemirrorError, InterruptedError } from '../errors.js';

export interface GitOptions {
  /** Bare repository to operate on; passed as `--git-dir=<abs>` so it can never read as an option. */
  gitDir?: string;
  cwd?: string;
  input?: string | Buffer;
  /** Stream stdin from here instead (a pack as it downloads); an error in it stops git. */
  stdin?: NodeJS.ReadableStream;
  /** Extra environment (only variables this project chooses, never user input). */
  env?: Record<string, string>;
  /** Exit codes that are not failures (for example 1 from `show-ref` on an empty repository). */
  okCodes?: number[];
  /** Repository name for error messages. */
  repo?: string;
  /** Called with each stderr chunk (progress output). */
  onStderr?: (chunk: string) => void;
  signal?: AbortSignal;
  /** Stream stdout here instead of buffering it (bundles can be gigabytes). */
  stdout?: NodeJS.WritableStream;
}

export interface GitResult {
  stdout: Buffer;
  stderr: string;
  code: number;
}

const STRIPPED = /^GIT_/;

export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!STRIPPED.test(k)) env[k] = v;
  }
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_ASKPASS = 'true';
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return { ...env, ...extra };
}

let spawned = 0;
/** Number of git processes started by this process (benchmarks and tests read it). */
export function gitProcessCount(): number {
  return spawned;
}

/**
 * Directories holding mirrors of someone else's repositories, each with the
 * empty hooks directory the replica owns. A hook is code, and a mirror's
 * files come from the network: every git command on a repository under one
 * of these runs with that directory as its hooks and without reflogs,
 * whatever the repository's own config says.
 */
const mirrorRoots = new Map<string, string>();

export function guardMirrorRoot(root: string, emptyHooksDir: string): void {
  mirrorRoots.set(root.replace(/\/+$/, ''), emptyHooksDir);
}

/** The `-c` options for a command on `gitDir`: none unless it is a mirror. */
export function mirrorConfigArgs(gitDir: string | undefined): string[] {
  if (!gitDir) return [];
  for (const [root, hooks] of mirrorRoots) {
    if (gitDir === root || gitDir.startsWith(root + '/'))
      return ['-c', `core.hooksPath=${hooks}`, '-c', 'core.logAllRefUpdates=false'];
  }
  return [];
}

export function git(args: string[], opts: GitOptions = {}): Promise<GitResult> {
  const argv = opts.gitDir ? [...mirrorConfigArgs(opts.gitDir), `--git-dir=${opts.gitDir}`, ...args] : args;
  return new Promise((resolve, reject) => {
    spawned += 1;
    const child = spawn('git', argv, {
      cwd: opts.cwd,
      env: gitEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    let err = '';
    let piped: Promise<void> = Promise.resolve();
    let stoppedByUs = false;
    if (opts.stdout) {
      piped = pipeline(child.stdout, opts.stdout);
      // nobody reads git's output any more: stop git rather than leave it blocked on a full pipe
      piped.catch(() => {
        stoppedByUs = true;
        child.kill('SIGTERM');
      });
    } else child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => {
      if (err.length < 1 << 20) err += c;
      opts.onStderr?.(c);
    });
    child.on('error', (e) => {
      // spawn's own abort handling kills git and reports an AbortError: the caller's reason is what happened,
      // reported on 'close' once git (and what it started) is gone, so the caller may remove what git was writing
      if (opts.signal?.aborted && child.pid !== undefined) return;
      if (opts.signal?.aborted) reject(opts.signal.reason);
      else
        reject(
          new BundlemirrorError('E_GIT', `could not run git ${subcommand(args)}: ${e.message}`, {
            repo: opts.repo,
            cause: e,
          }),
        );
    });
    child.stdin.on('error', () => {
      /* git may exit before reading all input; the exit code tells what happened */
    });
    child.on('close', async (code, signal) => {
      try {
        await piped;
      } catch (e) {
        reject(e);
        return;
      }
      if (opts.signal?.aborted) {
        reject(opts.signal.reason);
        return;
      }
      // Ctrl-C reaches the whole process group: git may die of it before our own handler aborts the work
      if (signal === 'SIGINT' || (signal === 'SIGTERM' && !stoppedByUs)) {
        reject(new InterruptedError(signal));
        return;
      }
      const exit = code ?? 128;
      const result: GitResult = { stdout: Buffer.concat(out), stderr: err, code: exit };
      const ok = exit === 0 || (opts.okCodes ?? []).includes(exit);
      if (ok && !signal) resolve(result);
      else {
        const why = err.trim().split('\n').slice(-3).join(' / ') || (signal ? `killed by ${signal}` : `exit ${exit}`);
        reject(new GitError(args, exit, err, `git ${subcommand(args)} failed: ${why}`, opts.repo));
      }
    });
    if (opts.stdin) pipeline(opts.stdin, child.stdin).catch(() => child.kill('SIGTERM'));
    else if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Where git's subcommand is in `args`: past git's own options (`-c key=value`, `-C dir`, `--git-dir=...`). */
export function subcommandAt(args: readonly string[]): number {
  let i = 0;
  while (i < args.length && args[i]!.startsWith('-')) i += args[i] === '-c' || args[i] === '-C' ? 2 : 1;
  return i;
}

/** The git command `args` run (`fetch`, not `-c`), for messages. */
function subcommand(args: readonly string[]): string {
  return args[subcommandAt(args)] ?? args[0] ?? '';
}

export class GitError extends BundlemirrorError {
  constructor(
    readonly args: string[],
    readonly exitCode: number,
    readonly stderr: string,
    message: string,
    repo?: string,
  ) {
    // git out of space (unbundle, fetch) is a full disk for the user to fix, as when we write ourselves
    const full = DISK_FULL.test(stderr);
    super(full ? 'E_DISK' : 'E_GIT', message, {
      repo,
      hint: full ? 'free some space; the next run resumes where this one stopped' : undefined,
    });
  }
}

const DISK_FULL = /No space left on device|Disk quota exceeded/;

/** stdout as text, trailing newline removed. */
export async function gitText(args: string[], opts: GitOptions = {}): Promise<string> {
  const r = await git(args, opts);
  return r.stdout.toString('utf8').replace(/\n$/, '');
}
