/**
 * Sample origin repositories for the demo, written with `git fast-import`
 * from a seeded generator: the same bytes on every machine, incompressible
 * where it matters (so interrupted downloads have something to interrupt).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../git/exec.js';
import { diskPathOf } from '../manifest/tree.js';

export interface SampleCommit {
  message: string;
  files: Record<string, Buffer>;
}

export interface SampleRepo {
  path: string;
  description: string;
  owner?: string;
  branches: Record<string, SampleCommit[]>;
  /** tag name -> [branch, commit number (1-based)] */
  tags: Record<string, [string, number]>;
}

/** Deterministic pseudo-random bytes (sha256 in counter mode). */
export function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let off = 0, i = 0; off < size; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest();
    off += block.copy(out, off);
  }
  return out;
}

const WHO = 'Demo Maintainer <maintainer@example.invalid>';

function fastImportStream(repo: SampleRepo): Buffer {
  const parts: Buffer[] = [];
  const text = (s: string) => parts.push(Buffer.from(s, 'utf8'));
  let mark = 0;
  let time = 1_767_225_600; // 2026-01-01, fixed so object ids are reproducible
  const commitMarks = new Map<string, number[]>();
  let parent: number | null = null;
  for (const [branch, commits] of Object.entries(repo.branches)) {
    const marks: number[] = [];
    // a branch after the first forks from the first branch's last commit
    let from: number | null = parent;
    for (const c of commits) {
      const blobMarks: [string, number][] = [];
      for (const [name, body] of Object.entries(c.files)) {
        mark += 1;
        text(`blob\nmark :${mark}\ndata ${body.length}\n`);
        parts.push(body);
        text('\n');
        blobMarks.push([name, mark]);
      }
      mark += 1;
      time += 3600;
      const msg = Buffer.from(c.message + '\n');
      text(
        `commit refs/heads/${branch}\nmark :${mark}\nauthor ${WHO} ${time} +0000\ncommitter ${WHO} ${time} +0000\ndata ${msg.length}\n`,
      );
      parts.push(msg);
      if (from !== null) text(`from :${from}\n`);
      for (const [name, m] of blobMarks) text(`M 100644 :${m} ${name}\n`);
      text('\n');
      from = mark;
      marks.push(mark);
    }
    commitMarks.set(branch, marks);
    if (parent === null) parent = from;
  }
  for (const [tag, [branch, n]] of Object.entries(repo.tags)) {
    const target = commitMarks.get(branch)?.[n - 1];
    if (target === undefined) continue;
    time += 60;
    const msg = Buffer.from(`Release ${tag}\n`);
    text(`tag ${tag}\nfrom :${target}\ntagger ${WHO} ${time} +0000\ndata ${msg.length}\n`);
    parts.push(msg);
    text('\n');
  }
  text('done\n');
  return Buffer.concat(parts);
}

export async function createSampleRepo(toplevel: string, repo: SampleRepo): Promise<string> {
  const dir = diskPathOf(toplevel, repo.path);
  await mkdir(dir, { recursive: true });
  await git([
    'init',
    '--bare',
    '--quiet',
    '--initial-branch',
    Object.keys(repo.branches)[0] ?? 'main',
    '--end-of-options',
    dir,
  ]);
  await git(['fast-import', '--quiet', '--done'], { gitDir: dir, input: fastImportStream(repo) });
  await writeFile(join(dir, 'description'), repo.description + '\n');
  if (repo.owner) await git(['config', 'gitweb.owner', repo.owner], { gitDir: dir });
  return dir;
}

function commits(seed: string, n: number, bytesEach: number): SampleCommit[] {
  return Array.from({ length: n }, (_, i) => ({
    message: `${seed}: change ${i + 1}`,
    files: {
      [`src/part-${String(i + 1).padStart(3, '0')}.dat`]: seededBytes(`${seed}-${i}`, bytesEach),
      NEWS: Buffer.from(`${seed} change ${i + 1}\n`),
    },
  }));
}

/** The demo's collection: a project with history worth resuming, a small one, and a fork. */
export function demoCollection(): SampleRepo[] {
  const alphaMain = commits('alpha', 40, 64 << 10);
  return [
    {
      path: '/pub/tools/alpha.git',
      description: 'Alpha: the sample project, 2.5 MiB of history',
      owner: 'Demo Maintainer',
      branches: { main: alphaMain, devel: commits('alpha-devel', 3, 4 << 10) },
      tags: { 'v1.0': ['main', 20], 'v1.1': ['main', 40] },
    },
    {
      path: '/pub/tools/beta.git',
      description: 'Beta: a small library',
      branches: { main: commits('beta', 10, 1 << 10) },
      tags: { 'v0.1': ['main', 10] },
    },
    {
      path: '/pub/forks/alpha-fork.git',
      description: 'A fork of Alpha with two patches',
      branches: { main: [...alphaMain, ...commits('fork', 2, 2 << 10)] },
      tags: { 'v1.0': ['main', 20] },
    },
  ];
}
