import test from 'ava';
import { createHash } from 'node:crypto';
import { appendFile, mkdir, readFile, readdir, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { isBundlemirrorError } from '../src/errors.js';
import { parseBundleHeader } from '../src/git/bundle.js';
import { git } from '../src/git/exec.js';
import { PACK_HEADER_SIZE, packHeader } from '../src/git/pack.js';
import { indexPack, initBare } from '../src/git/repo.js';
import { indexFreshChain } from '../src/replica/sync/fresh-chain.js';
import { feedGit } from '../src/replica/sync/part-indexer.js';
import { streamIndex } from '../src/replica/sync/stream-index.js';
import { partialPathFor } from '../src/transfer/partial-file.js';
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

test('git index-pack that stopped reading a pack: feeding it more fails with E_GIT naming the repository', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const target = join(dir, 'new.git');
  await initBare(target);
  const feed = new PassThrough({ highWaterMark: 1 << 20 });
  feed.on('error', () => {});
  const made = indexPack(target, feed, '/a.git', { thin: false });
  made.catch(() => {});
  // a header announcing objects, then zeros: no object has type 0, so git dies at the first one
  const zeros = Buffer.alloc(1 << 20);
  const fed = (async () => {
    await feedGit(feed, packHeader(1000), '/a.git');
    for (let i = 0; i < 64; i++) await feedGit(feed, zeros, '/a.git');
  })();
  const err = await t.throwsAsync(fed);
  t.true(isBundlemirrorError(err));
  t.like(err, { code: 'E_GIT', repo: '/a.git' });
  t.truthy((err as { hint?: string }).hint, 'it says what to do');
  await t.throwsAsync(made, { code: 'E_GIT' });
});

test('a partial whose pack git gives up on mid-stream: nothing streamed is kept and the bundle is indexed from the verified file', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  // several MiB of pack, so git stops reading long before the reader has fed it all
  const { bare } = await makeRepo(dir, join(dir, 'top'), 'a.git', { commits: 6, bytesPerCommit: 600_000 });
  const bundleFile = join(dir, 'base.bundle');
  await git(['bundle', 'create', '--quiet', bundleFile, '--all'], { gitDir: bare });
  const bytes = await readFile(bundleFile);
  const header = parseBundleHeader(bytes.subarray(0, bytes.indexOf('\n\n') + 2));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const work = join(dir, 'new.git');
  await initBare(work);
  const partialDir = join(dir, 'partial');
  const cacheDir = join(dir, 'cache');
  await mkdir(partialDir);
  await mkdir(cacheDir);
  // a partial left by an earlier run with the right header and a pack body git refuses at its first object;
  // it exists before the indexer starts, so the indexer follows it and never the verified file
  const bad = Buffer.from(bytes);
  bad.fill(0, header.packOffset + PACK_HEADER_SIZE);
  await writeFile(partialPathFor(partialDir, sha256), bad);
  const result = await indexFreshChain({
    work,
    path: '/a.git',
    bundles: [
      {
        uri: 'base.bundle',
        sha256,
        size: bytes.length,
        creationToken: 1,
        prerequisites: [],
        tips: Object.fromEntries(header.tips.map((tip) => [tip.name, tip.oid])),
      },
    ],
    partialDir,
    cacheDir,
    // the download found the partial wrong and fetched the file again: the verified file is the right one
    download: async (b) => {
      await writeFile(join(cacheDir, `${b.sha256}.bundle`), bytes);
      return {
        path: join(cacheDir, `${b.sha256}.bundle`),
        bytesDownloaded: bytes.length,
        bytesResumed: 0,
        attempts: 1,
        restarts: 1,
        bytesHashedFromDisk: 0,
      };
    },
    log: { debug: () => {} },
  });
  t.is(result.streamed, 0, 'nothing fed from the bad partial was kept');
  const tail = bytes.subarray(bytes.length - 20).toString('hex');
  t.deepEqual(await packs(work), [`pack-${tail}.idx`, `pack-${tail}.pack`], "only the verified file's pack");
  for (const tip of header.tips) {
    const walk = await git(['rev-list', '--objects', tip.oid], { gitDir: work, okCodes: [128] });
    t.is(walk.code, 0, `${tip.name}: ${walk.stderr}`);
  }
});
