/**
 * The fault-injection harness shared by the reliability tests and the
 * randomized runner (test/reliability/run.ts): what "nothing lost" means,
 * checked the way a user would check it, and the means to break things on
 * purpose.
 *
 * - `verifyMirror`: every repository's `git show-ref` (so its fingerprint)
 *   equals the origin's, and `git fsck` is clean.
 * - `leftovers`: what a finished run must not leave behind (temp packs, ref
 *   locks, partial downloads, staging directories, cached bundles, temp
 *   files), and `oversizedPartials`: a partial larger than its bundle.
 * - `startCli`: the real `bin/bundlemirror` in its own process group, so a
 *   test can `kill -9` it together with the git processes it started.
 * - `gitShim`: a `git` first in PATH that marks when a chosen phase starts
 *   (unbundle, ref transaction, fetch) and holds it briefly, so a kill can
 *   land inside that phase instead of wherever the clock happens to be.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { eventually } from './daemon.js';
import { git } from '../../src/git/exec.js';
import { parseRepoIndex, type RepoIndex } from '../../src/manifest/repo-index.js';
import { BIN } from './cli.js';
import { showRefOf } from './repos.js';

/** Child pulls notice a stalled link after this long instead of 30 s (src/transfer/http.ts). */
export const FAST_ENV: Record<string, string> = { BUNDLEMIRROR_IDLE_TIMEOUT_MS: '1500' };

export interface RepoCheck {
  path: string;
  ok: boolean;
  why: string;
}

/** Compares one replica repository with the origin's: refs byte for byte, then git fsck. */
export async function checkRepo(originTop: string, replicaTop: string, path: string): Promise<RepoCheck> {
  const o = join(originTop, ...path.slice(1).split('/'));
  const r = join(replicaTop, ...path.slice(1).split('/'));
  let mine: string;
  try {
    mine = await showRefOf(r);
  } catch (err) {
    return { path, ok: false, why: `cannot read refs: ${(err as Error).message}` };
  }
  if (mine !== (await showRefOf(o))) return { path, ok: false, why: 'refs differ from the origin' };
  const fsck = await git(['fsck', '--no-progress', '--no-dangling'], { gitDir: r, okCodes: [1, 2, 3, 4, 5, 6, 7, 8] });
  if (fsck.code !== 0)
    return {
      path,
      ok: false,
      why: `git fsck: ${(fsck.stdout.toString() + fsck.stderr).trim().split('\n').slice(0, 3).join(' / ')}`,
    };
  return { path, ok: true, why: '' };
}

export async function verifyMirror(originTop: string, replicaTop: string, paths: string[]): Promise<RepoCheck[]> {
  const out: RepoCheck[] = [];
  for (const p of paths) out.push(await checkRepo(originTop, replicaTop, p));
  return out;
}

/** git fsck of every forkgroup store under `<toplevel>/objstore`; returns the problems. */
export async function checkStores(toplevel: string): Promise<string[]> {
  const problems: string[] = [];
  const dir = join(toplevel, 'objstore');
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.git')) continue;
    const fsck = await git(['fsck', '--no-progress', '--no-dangling'], {
      gitDir: join(dir, name),
      okCodes: [1, 2, 3, 4, 5, 6, 7, 8],
    });
    if (fsck.code !== 0)
      problems.push(
        `store objstore/${name}: git fsck: ${(fsck.stdout.toString() + fsck.stderr).trim().split('\n').slice(0, 3).join(' / ')}`,
      );
  }
  return problems;
}

/** `git show-ref` of a replica repository, or null when it does not exist (yet). */
export async function refsOrNull(top: string, path: string): Promise<string | null> {
  const dir = join(top, ...path.slice(1).split('/'));
  try {
    await stat(join(dir, 'HEAD'));
  } catch {
    return null;
  }
  return showRefOf(dir);
}

async function walk(dir: string, visit: (path: string, isDir: boolean) => Promise<boolean | void>): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(dir, name);
    const st = await lstat(p).catch(() => null);
    if (!st) continue;
    const descend = await visit(p, st.isDirectory());
    if (st.isDirectory() && descend !== false) await walk(p, visit);
  }
}

/**
 * Everything a successful run must have cleaned up under a replica
 * toplevel: temp packs and ref/config locks inside repositories, partial
 * downloads, cached bundles and staging directories under .bundlemirror,
 * temp files of atomic writes anywhere. Paths are relative to the toplevel.
 */
export async function leftovers(toplevel: string): Promise<string[]> {
  const found: string[] = [];
  for (const sub of ['partial', 'bundles', 'staging']) {
    for (const name of await readdir(join(toplevel, '.bundlemirror', sub)).catch(() => [] as string[]))
      found.push(`.bundlemirror/${sub}/${name}`);
  }
  await walk(toplevel, async (p, isDir) => {
    const rel = relative(toplevel, p);
    const name = rel.split('/').pop()!;
    if (rel === '.bundlemirror/partial' || rel === '.bundlemirror/bundles' || rel === '.bundlemirror/staging')
      return false;
    if (/^tmp_(pack|idx)_/.test(name) || name.startsWith('.bm-tmp-')) found.push(rel);
    else if (!isDir && name.endsWith('.lock') && !rel.startsWith('.bundlemirror/')) found.push(rel);
    return true;
  });
  return found.sort();
}

/** Every bundle the published tree lists, by sha256, with its size. */
export async function publishedBundles(out: string): Promise<Map<string, { size: number; repo: string }>> {
  const map = new Map<string, { size: number; repo: string }>();
  await walk(out, async (p, isDir) => {
    if (isDir || !p.endsWith('/index.json')) return;
    const repo = '/' + relative(out, p).replace(/\/index\.json$/, '');
    try {
      const index = parseRepoIndex(await readFile(p), repo);
      for (const b of index.bundles) map.set(b.sha256, { size: b.size, repo });
    } catch {
      /* a hostile or broken index: nothing to expect from it */
    }
  });
  return map;
}

/**
 * Partial downloads that are larger than the bundle they are named after
 * (a partial must never grow past its expected size), or named after no
 * bundle the origin ever listed (`known` accumulates across publishes).
 */
export async function oversizedPartials(toplevel: string, known: Map<string, { size: number }>): Promise<string[]> {
  const bad: string[] = [];
  const dir = join(toplevel, '.bundlemirror', 'partial');
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /^([0-9a-f]{64})\.part$/.exec(name);
    if (!m) continue;
    const size = (await stat(join(dir, name))).size;
    const want = known.get(m[1]!);
    if (!want) bad.push(`${name}: not a published bundle`);
    else if (size > want.size) bad.push(`${name}: ${size} bytes, the bundle has ${want.size}`);
  }
  return bad;
}

/** Sum of the sizes of files under `dir` whose names match. */
export async function bytesUnder(dir: string, match: RegExp = /./): Promise<number> {
  let n = 0;
  await walk(dir, async (p, isDir) => {
    if (!isDir && match.test(p)) n += (await stat(p)).size;
  });
  return n;
}

/**
 * A listing of everything under `dir` (type, size, mtime, link target) to
 * prove a run wrote nothing there: compare two snapshots for equality.
 */
export async function snapshot(dir: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const lines: string[] = [];
  await walk(dir, async (p) => {
    const rel = relative(dir, p);
    if (skip(rel)) return false;
    const st = await lstat(p);
    if (st.isSymbolicLink()) lines.push(`${rel} -> ${await readlink(p)}`);
    else if (st.isDirectory()) lines.push(`${rel}/`);
    else lines.push(`${rel} ${st.size} ${st.mtimeMs}`);
    return true;
  });
  return lines.sort();
}

// ---------------------------------------------------------------- processes

export interface RunningCli {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the process has exited: its code, or the signal that killed it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** kill -9 the whole process group: the CLI and every git process it started. */
  killGroup(): void;
}

/**
 * Starts `bin/bundlemirror ARGS` in a process group of its own. Used where
 * a test must kill it at a chosen moment; `runCli` (cli.ts) is enough
 * otherwise.
 */
export function startCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): RunningCli {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const killGroup = (): void => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  const timer = setTimeout(killGroup, opts.timeoutMs ?? 120_000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    killGroup,
  };
}

/** Polls `probe` every few milliseconds until it returns true or `exited` settles; true if the probe won. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  exited: Promise<unknown>,
  timeoutMs = 60_000,
): Promise<boolean> {
  let over = false;
  void exited.then(() => (over = true));
  const deadline = Date.now() + timeoutMs;
  while (!over && Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}

export type Phase = 'unbundle' | 'update-ref' | 'fetch' | 'bundle-create';

export interface GitShim {
  /** Prepend to PATH. */
  binDir: string;
  /** Environment for the child: PATH and the shim's settings. */
  env(hold: Partial<Record<Phase, number>>): Record<string, string>;
  /** Resolves true once a git process of this phase has started (false if `exited` settles first). */
  started(phase: Phase, exited: Promise<unknown>, timeoutMs?: number): Promise<boolean>;
  /** Forget the marks of earlier runs. */
  reset(): Promise<void>;
}

/**
 * Writes a `git` wrapper into `dir`. For the phases given to env(), it
 * records that the phase started (a file in the marks directory) and holds
 * the real git back for the given milliseconds first, so that a kill at a
 * random moment after the mark lands before or inside that git process.
 * Everything else is passed straight to the real git.
 */
export async function gitShim(dir: string): Promise<GitShim> {
  const binDir = join(dir, 'shim-bin');
  const marks = join(dir, 'shim-marks');
  await mkdir(binDir, { recursive: true });
  await mkdir(marks, { recursive: true });
  const which = await new Promise<string>((resolve, reject) => {
    const c = spawn('sh', ['-c', 'command -v git'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error('git not found'))));
  });
  const script = `#!/bin/sh
# reliability test shim: mark a phase, hold it, then run the real git
phase=
case " $* " in
  *" bundle unbundle "*|*" index-pack --stdin "*) phase=unbundle ;;
  *" update-ref --stdin "*) phase=update-ref ;;
  *" fetch "*) phase=fetch ;;
  *" bundle create "*) phase=bundle-create ;;
esac
if [ -n "$phase" ]; then
  : > "$BM_SHIM_MARKS/$phase.$$"
  eval "hold=\\$BM_SHIM_HOLD_$(echo "$phase" | tr '-' '_')"
  [ -n "$hold" ] && sleep "$hold"
fi
exec ${which} "$@"
`;
  await writeFile(join(binDir, 'git'), script);
  await chmod(join(binDir, 'git'), 0o755);
  return {
    binDir,
    env(hold) {
      const e: Record<string, string> = { PATH: `${binDir}:${process.env.PATH ?? ''}`, BM_SHIM_MARKS: marks };
      for (const [phase, ms] of Object.entries(hold))
        e[`BM_SHIM_HOLD_${phase.replace('-', '_')}`] = (ms / 1000).toFixed(3);
      return e;
    },
    async started(phase, exited, timeoutMs = 60_000) {
      return waitUntil(async () => (await readdir(marks)).some((n) => n.startsWith(`${phase}.`)), exited, timeoutMs);
    },
    async reset() {
      for (const n of await readdir(marks)) await rm(join(marks, n), { force: true });
    },
  };
}

/** The summary line of a pull (its last line on stdout). */
export function summaryLine(stdout: string): string {
  return stdout.trim().split('\n').pop() ?? '';
}

/** Parses `saved N by resuming` from a pull summary, in bytes (approximate for KiB/MiB). */
export function savedByResuming(stdout: string): number {
  const m = /saved ([0-9.]+) (B|KiB|MiB|GiB) by resuming/.exec(stdout);
  if (!m) return -1;
  const unit = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] as 'B'];
  return Number(m[1]) * unit;
}

/** Reads a repository's index.json from a published tree. */
export async function readIndex(out: string, path: string): Promise<RepoIndex> {
  return parseRepoIndex(await readFile(join(out, ...path.slice(1).split('/'), 'index.json')), path);
}

/**
 * Waits until a partial download in the replica holds more than `bytes`, so
 * a test can kill a pull mid-bundle; throws when none does in time (a kill
 * made earlier would test something else).
 */
export async function partialPast(toplevel: string, bytes: number): Promise<void> {
  const partials = join(toplevel, '.bundlemirror', 'partial');
  await eventually(async () => {
    const sizes = await Promise.all(
      (await readdir(partials).catch(() => [] as string[])).map(async (f) => (await stat(join(partials, f))).size),
    );
    return sizes.some((s) => s > bytes) ? true : undefined;
  });
}
