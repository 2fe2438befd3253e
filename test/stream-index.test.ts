import test from 'ava';
import { appendFile, readFile, readdir, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { git } from '../src/git/exec.js';
import { initBare } from '../src/git/repo.js';
import { streamIndex } from '../src/replica/sync/stream-index.js';
import { makeRepo, tempDir } from './support/repos.js';

/** A real base bundle of a repository with some history, and an empty repository to index into. */
async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const { bare } = await makeRepo(dir, join(dir, 'top'), 'a.git', { commits: 6, bytesPerCommit: 200_000 });
  const bundleFile = join(dir, 'base.bundle');
  await git(['bundle', 'create', '--quiet', bundleFile, '--all'], { gitDir: bare });
  const bytes = await readFile(bundleFile);
  const target = join(dir, 'new.git');
  await initBare(target);
  return { dir, bare, bytes, target, partial: join(dir, 'base.part'), verified: join(dir, 'verified.bundle') };
}

async function packs(gitDir: string): Promise<string[]> {
  return (await readdir(join(gitDir, 'objects', 'pack'))).sort();
}

/** Writes `bytes` into `file` in pieces, the way a download grows its partial. */
async function grow(file: string, bytes: Buffer, pieces: number): Promise<void> {
  const step = Math.ceil(bytes.length / pieces);
  for (let at = 0; at < bytes.length; at += step) {
    await appendFile(file, bytes.subarray(at, at + step));
    await sleep(5);
  }
}

test('a base bundle is indexed while its partial grows, and the pack is kept once the verified file is its pack', async (t) => {
  const s = await setup(t);
  await writeFile(s.partial, '');
  const streaming = streamIndex(s.partial, s.bytes.length, s.target, '/a.git');
  await grow(s.partial, s.bytes, 40);
  await rename(s.partial, s.verified);
  const made = await streaming.finish(s.verified);
  t.truthy(made);
  t.true(made!.connected);
  const [hash] = made!.packHashes;
  t.deepEqual(await packs(s.target), [`pack-${hash}.idx`, `pack-${hash}.pack`]);
  const fsck = await git(['fsck', '--no-dangling', '--connectivity-only'], { gitDir: s.target, okCodes: [1, 2, 4] });
  t.is(fsck.code, 0, fsck.stderr);
});

test('bytes fed from a prefix the download later threw away never survive: no pack, or exactly the verified one', async (t) => {
  const s = await setup(t);
  // a wrong first half (another version of the file), then the download starts over with the right bytes
  const wrong = Buffer.from(s.bytes);
  for (let i = wrong.length >> 2; i < wrong.length >> 1; i += 97) wrong[i] = wrong[i]! ^ 0xff;
  await writeFile(s.partial, wrong.subarray(0, wrong.length >> 1));
  const streaming = streamIndex(s.partial, s.bytes.length, s.target, '/a.git');
  await sleep(200);
  await truncate(s.partial, 0);
  await grow(s.partial, s.bytes, 10);
  await rename(s.partial, s.verified);
  const made = await streaming.finish(s.verified);
  const left = await packs(s.target);
  if (made) t.deepEqual(left, [`pack-${made.packHashes[0]}.idx`, `pack-${made.packHashes[0]}.pack`]);
  else
    t.deepEqual(
      left.filter((f) => f.startsWith('pack-')),
      [],
      'nothing index-pack wrote is left',
    );
  const tail = s.bytes.subarray(s.bytes.length - 20).toString('hex');
  if (made) t.deepEqual(made.packHashes, [tail]);
});

test('a download that fails leaves nothing index-pack wrote', async (t) => {
  const s = await setup(t);
  await writeFile(s.partial, '');
  const streaming = streamIndex(s.partial, s.bytes.length, s.target, '/a.git');
  await grow(s.partial, s.bytes.subarray(0, s.bytes.length >> 1), 5);
  await sleep(100);
  await streaming.abandon();
  t.deepEqual(
    (await packs(s.target)).filter((f) => f.startsWith('pack-')),
    [],
  );
});

test('a complete file that never went through the partial (verified earlier) is indexed from the file', async (t) => {
  const s = await setup(t);
  const streaming = streamIndex(s.partial, s.bytes.length, s.target, '/a.git');
  await writeFile(s.verified, s.bytes);
  const made = await streaming.finish(s.verified);
  t.truthy(made);
  t.deepEqual(made!.packHashes, [s.bytes.subarray(s.bytes.length - 20).toString('hex')]);
});
