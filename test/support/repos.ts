/**
 * Real git repositories for tests: bare origins with branches, annotated
 * tags and forks, built with the git binary in temp directories.
 */
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { git, gitText } from '../../src/git/exec.js';
import { seededRandom } from '../../src/faults/random.js';

/**
 * A temporary directory named for this process (`bm-test-<pid>-XXXXXX`);
 * `cleanup` removes it (the caller registers it with t.teardown). A test
 * process that dies before its teardowns ran (a timeout, a kill) leaves its
 * directories behind: the next process to make one removes those of dead
 * processes, except one marked `KEPT_MARK` for inspection.
 */
export async function tempDir(prefix = 'bm-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  sweeping ??= sweepDeadProcesses();
  await sweeping;
  const dir = await mkdtemp(join(tmpdir(), `${prefix}${process.pid}-`));
  // retried: a git process a killed CLI left running may still be writing into it
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true, maxRetries: 5 }) };
}

/** A file in a temporary directory that keeps it from the sweep (a failed reliability trial kept to inspect). */
export const KEPT_MARK = '.kept';

let sweeping: Promise<void> | null = null;

async function sweepDeadProcesses(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = Number(/^bm-[a-z-]+?-(\d+)-[A-Za-z0-9]{6}$/.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    const dir = join(tmpdir(), name);
    if (await stat(join(dir, KEPT_MARK)).catch(() => null)) continue;
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const IDENT = {
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.invalid',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.invalid',
};

/** A working tree to make commits in, pushing into a bare repository. */
export class WorkTree {
  private n = 0;
  constructor(
    readonly dir: string,
    readonly bare: string,
  ) {}

  static async create(root: string, bare: string, opts: { branch?: string } = {}): Promise<WorkTree> {
    const dir = join(root, `wt-${randomBytes(4).toString('hex')}`);
    await git(['init', '--quiet', '--initial-branch', opts.branch ?? 'main', dir]);
    await git(['remote', 'add', 'origin', bare], { cwd: dir });
    return new WorkTree(dir, bare);
  }

  async run(args: string[]): Promise<string> {
    return gitText(args, { cwd: this.dir, env: IDENT });
  }

  /** Adds a commit with one new file; `bytes` of random (incompressible) content when given. */
  async commit(message?: string, bytes = 0): Promise<string> {
    this.n += 1;
    const name = `file-${this.n}-${randomBytes(3).toString('hex')}.txt`;
    const body = bytes > 0 ? randomBytes(bytes) : Buffer.from(`${message ?? 'change'} ${this.n}\n`);
    await writeFile(join(this.dir, name), body);
    await this.run(['add', '--', name]);
    await this.run(['commit', '--quiet', '-m', message ?? `commit ${this.n}`]);
    return this.run(['rev-parse', 'HEAD']);
  }

  async push(...refspecs: string[]): Promise<void> {
    await this.run(['push', '--quiet', '--force', 'origin', ...refspecs]);
  }
}

export async function initBareRepo(path: string, opts: { description?: string; owner?: string } = {}): Promise<string> {
  await mkdir(path, { recursive: true });
  await git(['init', '--bare', '--quiet', '--initial-branch', 'main', path]);
  if (opts.description !== undefined) await writeFile(join(path, 'description'), opts.description + '\n');
  if (opts.owner !== undefined) await git(['config', 'gitweb.owner', opts.owner], { gitDir: path });
  return path;
}

/** A bare repository with `commits` commits on main, a second branch and an annotated tag. */
/**
 * A toplevel (`<dir>/top`) holding a repository at each of `paths` (with
 * `opts` per path), and where publish is to write (`<dir>/out`, not made):
 * the publish tests' starting point. Removed with the test.
 */
export async function toplevelWith(
  t: { teardown: (fn: () => Promise<void>) => void },
  paths: string[],
  opts: Record<string, Parameters<typeof makeRepo>[3]> = {},
): Promise<{ dir: string; toplevel: string; out: string; repos: Record<string, { bare: string; wt: WorkTree }> }> {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const repos: Record<string, { bare: string; wt: WorkTree }> = {};
  for (const p of paths) repos[p] = await makeRepo(dir, toplevel, p, opts[p]);
  return { dir, toplevel, out: join(dir, 'out'), repos };
}

export async function makeRepo(
  root: string,
  toplevel: string,
  relPath: string,
  opts: { commits?: number; bytesPerCommit?: number; description?: string; owner?: string } = {},
): Promise<{ bare: string; wt: WorkTree }> {
  const bare = await initBareRepo(join(toplevel, relPath), opts);
  const wt = await WorkTree.create(root, bare);
  const commits = opts.commits ?? 3;
  for (let i = 0; i < commits; i++) await wt.commit(`commit ${i + 1}`, opts.bytesPerCommit ?? 0);
  await wt.run(['tag', '-a', '-m', 'release 1', 'v1.0']);
  await wt.run(['branch', 'devel']);
  await wt.commit('after tag');
  await wt.push('main', 'devel', 'v1.0');
  return { bare, wt };
}

/** A fork: a bare clone of `source` that then gains a commit of its own. */
export async function makeFork(
  root: string,
  toplevel: string,
  source: string,
  relPath: string,
): Promise<{ bare: string; wt: WorkTree }> {
  const bare = join(toplevel, relPath);
  await git(['clone', '--bare', '--quiet', source, bare]);
  const wt = await WorkTree.create(root, bare);
  await wt.run(['fetch', '--quiet', 'origin', 'main']);
  await wt.run(['checkout', '--quiet', '-B', 'main', 'FETCH_HEAD']);
  await wt.commit('fork commit');
  await wt.push('main');
  return { bare, wt };
}

/** `git show-ref` output and its sha1, computed with the real binaries. */
export async function showRefOf(gitDir: string): Promise<string> {
  const r = await git(['show-ref'], { gitDir, okCodes: [1] });
  return r.stdout.toString();
}

const COMMITS = 180;

/**
 * A repository with a real history for its size: 40 text files, each
 * commit rewriting a few lines of three of them (so the pack is mostly
 * deltas), a branch off the middle, lightweight and annotated tags.
 */
export async function textHistoryRepo(bare: string): Promise<void> {
  await initBareRepo(bare);
  const random = seededRandom(17);
  const word = () => Math.floor(random() * 1e9).toString(36);
  const files: string[][] = Array.from({ length: 40 }, () =>
    Array.from({ length: 60 }, () => Array.from({ length: 8 }, word).join(' ')),
  );
  const parts: string[] = [];
  const blob = (text: string) => `data ${Buffer.byteLength(text)}\n${text}\n`;
  for (let c = 1; c <= COMMITS; c++) {
    const touched = c === 1 ? files.map((_, i) => i) : [0, 1, 2].map(() => Math.floor(random() * files.length));
    for (const f of touched)
      for (let l = 0; l < 4; l++) files[f]![Math.floor(random() * 60)] = Array.from({ length: 8 }, word).join(' ');
    const msg = `commit ${c}`;
    parts.push(
      `commit refs/heads/main\nmark :${c}\ncommitter A U Thor <a@example.invalid> ${1_700_000_000 + c * 60} +0000\n${blob(msg)}`,
      ...(c > 1 ? [`from :${c - 1}\n`] : []),
      ...touched.map((f) => `M 100644 inline src/file-${f}.txt\n${blob(files[f]!.join('\n'))}`),
      '\n',
    );
    if (c === COMMITS / 2) parts.push(`reset refs/heads/devel\nfrom :${c}\n\n`, `reset refs/tags/mid\nfrom :${c}\n\n`);
  }
  parts.push(`tag v1.0\nfrom :${COMMITS}\ntagger A U Thor <a@example.invalid> 1800000000 +0000\n${blob('release')}`);
  await git(['fast-import', '--quiet'], { gitDir: bare, input: parts.join('') });
}
