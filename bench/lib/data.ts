/**
 * Benchmark data, generated here and the same on every machine: a large
 * repository (thousands of commits, hundreds of tags, a few maintenance
 * branches, incompressible blobs so byte counts mean something), and small
 * pushes on top of it. Streams through `git fast-import` so a few hundred
 * megabytes never sit in memory.
 *
 * Content comes from src/demo/samples.ts `seededBytes` (sha256 in counter
 * mode): it seeds an AES-256-CTR keystream, which is the same idea at
 * gigabytes per second instead of tens of megabytes.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { cp, mkdir, rm, stat, writeFile, readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { seededBytes } from '../../src/demo/samples.js';

/** Deterministic, incompressible bytes at disk speed (seededBytes keys an AES-CTR stream). */
export function fastSeededBytes(seed: string, size: number): Buffer {
  const kiv = seededBytes(seed, 48);
  const cipher = createCipheriv('aes-256-ctr', kiv.subarray(0, 32), kiv.subarray(32, 48));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

import { seededRandom as prng } from '../../src/faults/random.js';
export { prng };

export interface LargeRepoSpec {
  /** Commits on main. */
  commits: number;
  /** Mean size of the one incompressible blob each commit adds (uniform in [mean/4, 7*mean/4]). */
  meanBlobBytes: number;
  /** An annotated tag every this many commits on main. */
  tagEvery: number;
  /** Maintenance branches forked from main at spread-out points, each with this many commits. */
  branches: number;
  branchCommits: number;
  seed: string;
}

export const WHO = 'Bench Maintainer <bench@example.invalid>';
const EPOCH = 1_700_000_000;

/** Sink for a fast-import stream with backpressure. */
interface Importer {
  write(b: Buffer | string): Promise<void>;
  end(): Promise<void>;
}

function startFastImport(gitDir: string): Importer {
  const child = spawn('git', [`--git-dir=${gitDir}`, 'fast-import', '--quiet', '--done'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdin.on('error', () => {}); // an early exit is reported by the exit code below
  const exited = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`git fast-import exited ${code}: ${stderr.slice(-2000)}`)),
    );
  });
  exited.catch(() => {});
  return {
    async write(b) {
      if (!child.stdin.write(b)) await new Promise<void>((r) => child.stdin.once('drain', r));
    },
    async end() {
      child.stdin.end();
      await exited;
    },
  };
}

async function run(args: string[], opts: { cwd?: string; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`git ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`)),
    );
    child.stdin.on('error', () => {}); // git may exit without reading stdin; its exit code tells
    child.stdin.end(opts.input ?? '');
  });
}
export { run as runGit };

async function commitStanza(
  imp: Importer,
  ref: string,
  time: number,
  message: string,
  from: string | null,
  files: [string, Buffer][],
): Promise<void> {
  const msg = Buffer.from(message + '\n');
  await imp.write(`commit ${ref}\nauthor ${WHO} ${time} +0000\ncommitter ${WHO} ${time} +0000\ndata ${msg.length}\n`);
  await imp.write(msg);
  if (from) await imp.write(`from ${from}\n`);
  for (const [name, body] of files) {
    await imp.write(`M 100644 inline ${name}\ndata ${body.length}\n`);
    await imp.write(body);
    await imp.write('\n');
  }
  await imp.write('\n');
}

/**
 * Creates (or reuses, when a finished one with the same spec exists) a bare
 * repository shaped like a long-lived project, then packs it as a hosting
 * site would (`git repack -a -d`, one pack plus bitmaps).
 */
export async function largeRepo(
  dir: string,
  spec: LargeRepoSpec,
): Promise<{ dir: string; packBytes: number; reused: boolean }> {
  const stamp = join(dir, 'bench-spec.json');
  const want = JSON.stringify(spec);
  if ((await readFile(stamp, 'utf8').catch(() => '')) === want)
    return { dir, packBytes: await packBytes(dir), reused: true };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await run(['init', '--bare', '--quiet', '--initial-branch', 'main', dir]);
  const imp = startFastImport(dir);
  const rnd = prng(hashSeed(spec.seed));
  const changelog: string[] = [];
  let mark = 0;
  const branchAt = new Set(
    Array.from({ length: spec.branches }, (_, i) => Math.floor(((i + 1) * spec.commits) / (spec.branches + 1))),
  );
  for (let i = 1; i <= spec.commits; i++) {
    const size = Math.floor(spec.meanBlobBytes * (0.25 + 1.5 * rnd()));
    changelog.push(`${i}: change ${i} touches dir-${String(i % 40).padStart(2, '0')}/blob-${i}.bin (${size} bytes)`);
    mark += 1;
    const msg = `change ${i}\n\nAdds ${size} bytes of generated data.`;
    // written out here rather than with commitStanza: main's commits carry marks
    await imp.write(`commit refs/heads/main\nmark :${mark}\n`);
    const m = Buffer.from(msg + '\n');
    const time = EPOCH + i * 3600;
    await imp.write(`author ${WHO} ${time} +0000\ncommitter ${WHO} ${time} +0000\ndata ${m.length}\n`);
    await imp.write(m);
    // main's marks are consecutive: branch commits take none
    if (i > 1) await imp.write(`from :${mark - 1}\n`);
    const files: [string, Buffer][] = [
      [`dir-${String(i % 40).padStart(2, '0')}/blob-${i}.bin`, fastSeededBytes(`${spec.seed}:${i}`, size)],
      ['ChangeLog', Buffer.from(changelog.slice(-400).join('\n') + '\n')],
    ];
    for (const [name, body] of files) {
      await imp.write(`M 100644 inline ${name}\ndata ${body.length}\n`);
      await imp.write(body);
      await imp.write('\n');
    }
    await imp.write('\n');
    if (spec.tagEvery > 0 && i % spec.tagEvery === 0) {
      const tmsg = Buffer.from(`Release ${i / spec.tagEvery}\n`);
      await imp.write(
        `tag v${i / spec.tagEvery}.0\nfrom :${mark}\ntagger ${WHO} ${time + 60} +0000\ndata ${tmsg.length}\n`,
      );
      await imp.write(tmsg);
      await imp.write('\n');
    }
    if (branchAt.has(i)) {
      const name = `stable-${i}`;
      let from = `:${mark}`;
      for (let j = 1; j <= spec.branchCommits; j++) {
        await commitStanza(imp, `refs/heads/${name}`, time + j * 60, `${name}: backport ${j}`, from, [
          [`stable/${name}-${j}.bin`, fastSeededBytes(`${spec.seed}:${name}:${j}`, Math.floor(spec.meanBlobBytes / 4))],
        ]);
        from = '';
      }
    }
  }
  await imp.write('done\n');
  await imp.end();
  await writeFile(join(dir, 'description'), 'Bench: a large generated project\n');
  await run(['--git-dir', dir, 'repack', '-a', '-d', '-q', '--write-bitmap-index']);
  await run(['--git-dir', dir, 'pack-refs', '--all']);
  await writeFile(stamp, want);
  return { dir, packBytes: await packBytes(dir), reused: false };
}

function hashSeed(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Bytes of all packs (what a full clone has to move, give or take). */
export async function packBytes(gitDir: string): Promise<number> {
  const packDir = join(gitDir, 'objects', 'pack');
  let total = 0;
  for (const n of await readdir(packDir).catch(() => [] as string[])) {
    if (n.endsWith('.pack')) total += (await stat(join(packDir, n))).size;
  }
  return total;
}

/**
 * Adds one commit on `branch` directly in the bare repository (what a push
 * does to it): `bytes` of new incompressible content plus a small text
 * change. Returns the new commit id.
 */
export async function pushCommit(
  gitDir: string,
  opts: { seed: string; bytes: number; branch?: string; time?: number },
): Promise<string> {
  const branch = opts.branch ?? 'main';
  const ref = `refs/heads/${branch}`;
  const parent = (await run(['--git-dir', gitDir, 'rev-parse', '--verify', ref])).trim();
  const imp = startFastImport(gitDir);
  await commitStanza(imp, ref, opts.time ?? EPOCH + 10_000_000, `push ${opts.seed}`, parent, [
    [`pushes/${opts.seed}.bin`, fastSeededBytes(`push:${opts.seed}`, opts.bytes)],
    ['PUSHED', Buffer.from(`${opts.seed}\n`)],
  ]);
  await imp.write('done\n');
  await imp.end();
  return (await run(['--git-dir', gitDir, 'rev-parse', '--verify', ref])).trim();
}

/** Disk used by a directory tree in bytes (`du -sb`, hard links counted once). */
export async function diskUsage(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('du', ['-sb', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('error', reject);
    child.on('close', () => resolve(Number(out.split(/\s/)[0] ?? 0)));
  });
}

export interface HistoryRepoSpec {
  /** Text files in the tree. */
  files: number;
  /** Lines per file at the start. */
  lines: number;
  /** Commits on main, each changing `filesPerCommit` files by a few lines. */
  commits: number;
  filesPerCommit: number;
  /** An annotated tag every this many commits. */
  tagEvery: number;
  seed: string;
}

const WORDS =
  'the of and to in is that for it as with was on be by this are from or at an which have not but all were when we there can has more if will one about out so what up into only its other their time these then them some could would than first been may like any two new over also used after most where through such should because each those same work made between both under while last state before'.split(
    ' ',
  );

/**
 * A repository with real history and deltas, like a source project: text
 * files edited a few lines at a time over thousands of commits, so the
 * pack is mostly deltas and index-pack spends its time resolving them
 * (unlike largeRepo's incompressible blobs). Packed with `git repack -a -d
 * -f` as a hosting site would.
 */
export async function historyRepo(
  dir: string,
  spec: HistoryRepoSpec,
): Promise<{ dir: string; packBytes: number; reused: boolean }> {
  const stamp = join(dir, 'bench-spec.json');
  const want = JSON.stringify(spec);
  if ((await readFile(stamp, 'utf8').catch(() => '')) === want)
    return { dir, packBytes: await packBytes(dir), reused: true };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await run(['init', '--bare', '--quiet', '--initial-branch', 'main', dir]);
  const imp = startFastImport(dir);
  const rnd = prng(hashSeed(spec.seed));
  // keywords between made-up identifiers: compresses about as well as source code does
  const ident = () => Math.floor(rnd() * 2 ** 40).toString(36);
  const line = () =>
    Array.from({ length: 4 + Math.floor(rnd() * 6) }, (_, k) =>
      k % 2 ? WORDS[Math.floor(rnd() * WORDS.length)]! : ident(),
    ).join(' ');
  const tree: string[][] = Array.from({ length: spec.files }, () => Array.from({ length: spec.lines }, line));
  const name = (f: number) => `src/mod-${String(f % 32).padStart(2, '0')}/file-${f}.txt`;
  for (let i = 1; i <= spec.commits; i++) {
    const touched =
      i === 1
        ? tree.map((_, f) => f)
        : Array.from({ length: spec.filesPerCommit }, () => Math.floor(rnd() * spec.files));
    if (i > 1) {
      for (const f of touched) {
        const text = tree[f]!;
        for (let k = 0; k < 3; k++) text[Math.floor(rnd() * text.length)] = line();
        text.splice(Math.floor(rnd() * text.length), 0, line());
      }
    }
    const time = EPOCH + i * 600;
    const msg = Buffer.from(`change ${i}\n\nEdits ${touched.length} file(s).\n`);
    await imp.write(
      `commit refs/heads/main\nmark :${i}\nauthor ${WHO} ${time} +0000\ncommitter ${WHO} ${time} +0000\ndata ${msg.length}\n`,
    );
    await imp.write(msg);
    if (i > 1) await imp.write(`from :${i - 1}\n`);
    for (const f of new Set(touched)) {
      const body = Buffer.from(tree[f]!.join('\n') + '\n');
      await imp.write(`M 100644 inline ${name(f)}\ndata ${body.length}\n`);
      await imp.write(body);
      await imp.write('\n');
    }
    await imp.write('\n');
    if (spec.tagEvery > 0 && i % spec.tagEvery === 0) {
      const tmsg = Buffer.from(`Release ${i / spec.tagEvery}\n`);
      await imp.write(
        `tag v${i / spec.tagEvery}.0\nfrom :${i}\ntagger ${WHO} ${time + 60} +0000\ndata ${tmsg.length}\n`,
      );
      await imp.write(tmsg);
      await imp.write('\n');
    }
  }
  await imp.write('done\n');
  await imp.end();
  await writeFile(join(dir, 'description'), 'Bench: a generated project with text history\n');
  await run(['--git-dir', dir, 'repack', '-a', '-d', '-f', '-q', '--window=10', '--depth=50', '--write-bitmap-index']);
  await run(['--git-dir', dir, 'pack-refs', '--all']);
  await writeFile(stamp, want);
  return { dir, packBytes: await packBytes(dir), reused: false };
}

/**
 * A working copy of a real bare repository (`npm run bench -- --link-repo
 * PATH`), made once and kept in the cache: the source is only read (its
 * objects and refs are copied, never its config or hooks). A repository
 * cloned with a filter (a promisor pack) lacks some objects; the refs
 * that reach one are dropped from the copy, which neither `git bundle
 * create` nor `git clone` could serve otherwise, and their names are
 * returned. Then repacked as a hosting site would (`git repack -a -d`
 * keeping the source's deltas, with bitmaps).
 */
export async function realRepo(
  dir: string,
  source: string,
): Promise<{ dir: string; packBytes: number; reused: boolean; refs: number; dropped: string[] }> {
  const stamp = join(dir, 'bench-source.json');
  // the source's refs decide whether the copy is current
  const sourceRefs = await run(['--git-dir', source, 'for-each-ref', '--format=%(objectname) %(refname)']);
  const want = JSON.stringify({ source, refs: createHash('sha256').update(sourceRefs).digest('hex') });
  const count = async () => (await run(['--git-dir', dir, 'for-each-ref', '--format=x'])).split('\n').length - 1;
  const previous = await readFile(stamp, 'utf8').catch(() => '');
  if (previous.startsWith(want.slice(0, -1)))
    return {
      dir,
      packBytes: await packBytes(dir),
      reused: true,
      refs: await count(),
      dropped: (JSON.parse(previous) as { dropped: string[] }).dropped,
    };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dirname(dir), { recursive: true });
  await run(['init', '--bare', '--quiet', dir]);
  await cp(join(source, 'objects'), join(dir, 'objects'), {
    recursive: true,
    filter: (src) => !src.endsWith('.promisor') && !src.endsWith('/info/alternates'),
  });
  for (const name of ['HEAD', 'packed-refs', 'refs'])
    await cp(join(source, name), join(dir, name), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  const missingObjects = async () =>
    (await run(['--git-dir', dir, 'rev-list', '--objects', '--all', '--missing=print']))
      .split('\n')
      .filter((l) => l.startsWith('?'))
      .map((l) => l.slice(1));
  const missing = await missingObjects();
  let dropped: string[] = [];
  if (missing.length > 0) {
    // the commits that add or remove a missing object, then every ref containing one of them (with a
    // commit-graph: without its generation numbers, --contains walked for minutes over git.git's 4,294 refs)
    await run(['--git-dir', dir, 'commit-graph', 'write', '--reachable', '--no-progress']);
    const commits = (
      await run(['--git-dir', dir, 'log', '--all', '--format=%H', ...missing.map((o) => `--find-object=${o}`)])
    )
      .split('\n')
      .filter(Boolean);
    dropped = (
      await run(['--git-dir', dir, 'for-each-ref', '--format=%(refname)', ...commits.map((c) => `--contains=${c}`)])
    )
      .split('\n')
      .filter(Boolean);
    await run(['--git-dir', dir, 'update-ref', '--stdin'], { input: dropped.map((r) => `delete ${r}\n`).join('') });
    const still = await missingObjects();
    if (still.length > 0) throw new Error(`${source}: ${still.length} objects still missing after dropping refs`);
  }
  await run(['--git-dir', dir, 'repack', '-a', '-d', '-q', '--write-bitmap-index']);
  await run(['--git-dir', dir, 'pack-refs', '--all']);
  await writeFile(join(dir, 'description'), `Bench: a copy of ${source}\n`);
  await writeFile(stamp, JSON.stringify({ ...(JSON.parse(want) as object), dropped }));
  return { dir, packBytes: await packBytes(dir), reused: false, refs: await count(), dropped };
}
