/**
 * A base bundle published in parts (`publish --parts N`): its pack laid out
 * blobs, trees, commits, and index.json listing byte ranges a replica
 * indexes one by one while the rest downloads. The bundle stays a valid
 * bundle for stock git; a replica ends with the origin's refs and one pack
 * per part; an index.json whose parts lie (overlap, huge counts, a cut
 * inside an object, counts that do not add up, a part whose objects link
 * to a later part) ends in E_INDEX or in indexing the verified file as a
 * whole, never in a broken repository.
 */
import test, { type ExecutionContext } from 'ava';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundleHeader } from '../src/git/bundle.js';
import { git } from '../src/git/exec.js';
import { OBJ_COMMIT, OBJ_TAG, packObjectCount, packIndexEntries, readObjectHeader } from '../src/git/pack.js';
import { initBare } from '../src/git/repo.js';
import type { PackPart } from '../src/manifest/repo-index.js';
import { indexPackParts } from '../src/replica/sync/part-indexer.js';
import { runCli, startCli } from './support/cli.js';
import { fingerprintOf, replicaThrough, startHistoryOrigin, type HistoryOrigin } from './support/mirror.js';
import { checkRepo, FAST_ENV, leftovers, partialPast } from './support/reliability.js';
import { showRefOf } from './support/repos.js';

const PATH = '/pub/history.git';

type World = HistoryOrigin;
const world = startHistoryOrigin;

const parted = (t: ExecutionContext) => world(t, ['--parts', '5', '--parts-min-mib', '0']);

interface PullJson {
  repos: { path: string; action: string; error?: { code: string } }[];
  bytes: { downloaded: number; resumed: number };
}

async function pull(config: string): Promise<{ code: number; stderr: string; report: PullJson }> {
  const r = await runCli(['pull', '-c', config, '--no-progress', '--json', '-v'], { env: FAST_ENV });
  return { code: r.code, stderr: r.stderr, report: JSON.parse(r.stdout) as PullJson };
}

async function packsOf(gitDir: string): Promise<string[]> {
  return (await readdir(join(gitDir, 'objects', 'pack'))).filter((f) => f.endsWith('.pack')).sort();
}

/** Replaces the published index's base parts (what a hostile or broken origin could publish). */
async function publishParts(w: World, parts: PackPart[]): Promise<void> {
  const index = await w.index();
  index.bundles[0] = { ...index.bundles[0]!, parts };
  await writeFile(w.indexFile, JSON.stringify(index, null, 1));
}

test('a base in parts is one valid bundle: the parts run from its first object to its trailer, count its objects, and cost no bytes', async (t) => {
  const w = await parted(t);
  const base = (await w.index()).bundles[0]!;
  const parts = base.parts!;
  t.true(parts.length >= 3, `${parts.length} parts`);
  // the trees' biggest level is two parts, the second needing only the parts before the first
  const beside = parts.findIndex((p) => p.after !== undefined);
  t.true(beside > 0, 'a level of trees is cut in two');
  t.is(parts[beside]!.after, beside - 1);
  const header = await readBundleHeader(await w.bundleFile());
  const bytes = await readFile(await w.bundleFile());
  t.is(parts[0]!.offset, header.packOffset + 12);
  for (let k = 1; k < parts.length; k++) t.is(parts[k]!.offset, parts[k - 1]!.offset + parts[k - 1]!.size);
  t.is(parts.at(-1)!.offset + parts.at(-1)!.size, base.size - 20);
  t.is<number | null, number | null>(
    parts.reduce((n, p) => n + p.objects, 0),
    packObjectCount(bytes.subarray(header.packOffset)),
  );
  // the same repository published in one piece, and below the size threshold (the default 8 MiB)
  const whole = (await world(t, ['--parts', '1'])).index();
  const small = (await world(t, [])).index();
  t.is((await small).bundles[0]!.parts, undefined, 'a small base is one piece by default');
  const one = (await whole).bundles[0]!;
  t.is(one.parts, undefined);
  t.log(`in ${parts.length} parts: ${base.size} bytes; in one piece: ${one.size} bytes`);
  t.true(base.size <= one.size * 1.01, 'no more bytes than git bundle create writes');
  // stock git reads it as an ordinary bundle
  const clone = join(w.dir, 'from-bundle.git');
  const r = await git(['clone', '--quiet', '--mirror', await w.bundleFile(), clone]);
  t.is(r.code, 0);
  t.is(await showRefOf(clone), await showRefOf(w.bare));
  const fsck = await git(['fsck', '--no-dangling'], { gitDir: clone, okCodes: [1, 2, 4] });
  t.is(fsck.code, 0, fsck.stderr);
});

test('stock git clone --bundle-uri takes a base in parts from the bundle-list: the same refs as the origin', async (t) => {
  const w = await parted(t);
  const dest = join(w.dir, 'stock.git');
  const r = await git([
    'clone',
    '--quiet',
    '--mirror',
    `--bundle-uri=${w.url}${PATH}/bundle-list`,
    `${w.url}/git${PATH}`,
    dest,
  ]);
  t.is(r.code, 0, r.stderr);
  const all = await showRefOf(dest);
  t.true(all.includes(' refs/bundles/'), 'git unbundled the base (it records its branches under refs/bundles/)');
  const own = all
    .split('\n')
    .filter((l) => l && !l.includes(' refs/bundles/'))
    .join('\n');
  t.is(own + '\n', await showRefOf(w.bare));
});

test("a base in parts pulled through a link cut every 160 KiB: the origin's refs, fsck clean, one pack per part, nothing left over", async (t) => {
  const w = await parted(t);
  const base = (await w.index()).bundles[0]!;
  // slower than indexing, so that each part is indexed as it arrives (faster, parts on disk are indexed together)
  const { proxy, toplevel, config } = await replicaThrough(t, w, 'replica', {
    cutAfterBytes: 160 * 1024,
    bytesPerSecond: Math.ceil(base.size / 2),
  });
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  t.true(proxy.stats.cuts >= 2, `the link was cut ${proxy.stats.cuts} times`);
  t.is(r.report.bytes.downloaded, base.size, 'every byte of the bundle once, no more');
  const check = await checkRepo(w.toplevel, toplevel, PATH);
  t.true(check.ok, check.why);
  t.is(await fingerprintOf(join(toplevel, PATH)), await fingerprintOf(w.bare));
  // one pack per part, or fewer when parts were on disk together before their turn (never one: that is the fallback)
  const packs = (await packsOf(join(toplevel, PATH))).length;
  t.true(packs >= 2 && packs <= base.parts!.length, `${packs} packs for ${base.parts!.length} parts`);
  t.deepEqual(await leftovers(toplevel), []);
});

test('a pull killed while a base in parts downloads leaves no repository; the next run resumes and completes', async (t) => {
  // blobs in several parts, so that the first ends well before the last byte (with 5 parts they are one, 96% of
  // the file, and a kill between its end and the last byte had a window of a tenth of a second)
  const w = await world(t, ['--parts', '8', '--parts-min-mib', '0']);
  const base = (await w.index()).bundles[0]!;
  t.true(base.parts![1]!.offset < base.size / 2, `the second part starts at ${base.parts![1]!.offset} of ${base.size}`);
  const { toplevel, config } = await replicaThrough(t, w, 'replica', { bytesPerSecond: Math.ceil(base.size / 3) });
  const run = startCli(t, ['pull', '-c', config, '--no-progress'], { env: FAST_ENV });
  await partialPast(toplevel, base.parts![1]!.offset); // more than a part is on disk: kill
  run.signal('SIGKILL');
  await run.done;
  await t.throwsAsync(stat(join(toplevel, PATH)), undefined, 'no repository yet');
  const again = await pull(config);
  t.is(again.code, 0, again.stderr);
  const check = await checkRepo(w.toplevel, toplevel, PATH);
  t.true(check.ok, check.why);
  t.true((await packsOf(join(toplevel, PATH))).length <= base.parts!.length);
  t.deepEqual(await leftovers(toplevel), []);
});

/**
 * Parts a broken origin could publish for a pack in git's own order
 * (commits and tags first): part 0 holds the commits and tags, whose trees
 * are in part 1. Boundaries at real objects, no delta across them.
 */
async function commitsFirstParts(w: World): Promise<PackPart[]> {
  const file = await w.bundleFile();
  const { packOffset } = await readBundleHeader(file);
  const bytes = await readFile(file);
  const pack = join(w.dir, 'whole.pack');
  await writeFile(pack, bytes.subarray(packOffset));
  const scratch = join(w.dir, 'scratch.git');
  await initBare(scratch);
  await git(['index-pack', '-o', `${pack.slice(0, -5)}.idx`, pack], { gitDir: scratch });
  const offsets = (await packIndexEntries(`${pack.slice(0, -5)}.idx`)).map((e) => e.offset);
  const packBytes = bytes.subarray(packOffset);
  const first = offsets.findIndex((o) => {
    const type = readObjectHeader(packBytes, o, o)!.type;
    return type !== OBJ_COMMIT && type !== OBJ_TAG;
  });
  if (first <= 0) throw new Error('the pack is not in git order (commits first)');
  const cut = offsets[first]!;
  return [
    { offset: packOffset + 12, size: cut - 12, objects: first },
    { offset: packOffset + cut, size: packBytes.length - 20 - cut, objects: offsets.length - first },
  ];
}

test('git refuses a part whose objects link to objects in a later part, the parts not proved are named, and nothing it wrote is left', async (t) => {
  const w = await world(t, ['--parts', '1']);
  const parts = await commitsFirstParts(w);
  const { packOffset } = await readBundleHeader(await w.bundleFile());
  const pack = (await readFile(await w.bundleFile())).subarray(packOffset);
  const target = join(w.dir, 'target.git');
  await initBare(target);
  const indexer = indexPackParts(target, parts, PATH);
  await indexer.write(pack);
  const { packs, missing } = await indexer.end();
  t.deepEqual(packs, [], 'the first part (commits without their trees) is refused');
  t.deepEqual(missing, [0, 1], 'and the part after it is left to be indexed again with it');
  await indexer.drop();
  t.deepEqual(await packsOf(target), []);
  // the same pack in the published order (blobs, trees, commits) is proved part by part
  const good = await parted(t);
  const base = (await good.index()).bundles[0]!;
  const header = await readBundleHeader(await good.bundleFile());
  const fresh = join(w.dir, 'fresh.git');
  await initBare(fresh);
  const packBytes = (await readFile(await good.bundleFile())).subarray(header.packOffset);
  const ok = indexPackParts(fresh, base.parts!, PATH);
  await ok.write(packBytes);
  const proved = await ok.end();
  const made = proved.packs;
  t.deepEqual(proved.missing, []);
  t.is(made.length, base.parts!.length);
  t.deepEqual(await packsOf(fresh), made.map((h) => `pack-${h}.pack`).sort());
  const tips = Object.values(base.tips);
  const walk = await git(['rev-list', '--objects', '--quiet', '--stdin'], {
    gitDir: fresh,
    input: tips.join('\n') + '\n',
  });
  t.is(walk.code, 0, 'every object the tips reach is there');
  // parts already on disk when their turn comes are indexed together: here the first alone, then the rest
  const together = join(w.dir, 'together.git');
  await initBare(together);
  let onDisk = 0;
  const merged = indexPackParts(together, base.parts!, PATH, { onDisk: () => onDisk });
  await merged.write(packBytes.subarray(0, 13));
  onDisk = packBytes.length;
  await merged.write(packBytes.subarray(13));
  // (the two halves of a level of trees are never indexed together: that would undo what they are for)
  // here: the blobs, each half alone, then the rest together
  t.deepEqual(
    base.parts!.map((p) => p.after),
    [undefined, undefined, 1, undefined, undefined],
  );
  t.is((await merged.end()).packs.length, 4);
  t.is(
    (await git(['rev-list', '--objects', '--quiet', '--stdin'], { gitDir: together, input: tips.join('\n') + '\n' }))
      .code,
    0,
  );
});

/**
 * The commits-first parts with the second claiming to need nothing: two
 * halves side by side, the first (commits) linking into the second (their
 * trees and blobs). Fed up to the second half's last byte, held until git
 * has refused the first half, then the rest.
 */
async function refusedHalf(
  t: ExecutionContext,
  reread: (bytes: Buffer) => Buffer,
): Promise<{ target: string; tips: string[]; result: { packs: string[]; missing: number[] }; events: string[] }> {
  const w = await world(t, ['--parts', '1']);
  const parts = (await commitsFirstParts(w)).map((p, k) => (k === 1 ? { ...p, after: 0 } : p));
  const file = await readFile(await w.bundleFile());
  const header = await readBundleHeader(await w.bundleFile());
  const pack = file.subarray(header.packOffset);
  const target = join(w.dir, 'target.git');
  await initBare(target);
  const events: string[] = [];
  let refused!: () => void;
  const firstRefused = new Promise<void>((resolve) => (refused = resolve));
  const indexer = indexPackParts(target, parts, PATH, {
    onRefused: (k) => (events.push(`refused ${k}`), refused()),
    onPack: (first, last, again) => events.push(`${again ? 'again' : 'in'} ${first}-${last}`),
    reread: async function* (k) {
      yield reread(file.subarray(parts[k]!.offset, parts[k]!.offset + parts[k]!.size));
    },
  });
  const held = pack.length - 21; // the second half's last byte, and the pack trailer
  await indexer.write(pack.subarray(0, held));
  await firstRefused;
  await indexer.write(pack.subarray(held));
  const result = await indexer.end();
  return { target, tips: header.tips.map((r) => r.oid), result, events };
}

test('a half git refuses is indexed again once the half beside it is in: both packs, every object the tips reach', async (t) => {
  const { target, tips, result, events } = await refusedHalf(t, (bytes) => bytes);
  t.deepEqual(events, ['refused 0', 'in 1-1', 'again 0-0']);
  t.deepEqual(result.missing, []);
  t.is(result.packs.length, 2);
  t.deepEqual(await packsOf(target), result.packs.map((h) => `pack-${h}.pack`).sort());
  const walk = await git(['rev-list', '--objects', '--quiet', '--stdin'], {
    gitDir: target,
    input: tips.join('\n') + '\n',
  });
  t.is(walk.code, 0, 'every object the tips reach is there');
});

test('a refused half read again with other bytes is not indexed: it is named missing, the other half stays', async (t) => {
  const { target, result, events } = await refusedHalf(t, (bytes) => {
    const other = Buffer.from(bytes);
    const mid = other.length >> 1;
    other[mid] = other[mid]! ^ 1;
    return other;
  });
  t.deepEqual(events, ['refused 0', 'in 1-1']);
  t.deepEqual(result.missing, [0]);
  t.deepEqual(await packsOf(target), result.packs.map((h) => `pack-${h}.pack`).sort());
  t.is(result.packs.length, 1);
});

test("halves whose first links into the second, pulled: the origin's refs in one pack per half, nothing left over", async (t) => {
  const w = await world(t, ['--parts', '1']);
  await publishParts(
    w,
    (await commitsFirstParts(w)).map((p, k) => (k === 1 ? { ...p, after: 0 } : p)),
  );
  // whichever half git ends first, each is proved alone: refused once, the first is read again from the file
  await pullsInto(t, w, 2, 'a pack per half, not the verified file as a whole');
});

/** A pull through the world's server ends with the origin's refs in `packs` packs, and nothing left over. */
async function pullsInto(t: ExecutionContext, w: World, packs: number, what: string): Promise<void> {
  const { toplevel, config } = await replicaThrough(t, w, 'replica');
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  const check = await checkRepo(w.toplevel, toplevel, PATH);
  t.true(check.ok, check.why);
  t.is((await packsOf(join(toplevel, PATH))).length, packs, what);
  t.deepEqual(await leftovers(toplevel), []);
}

/** A pull ends with the origin's refs in one pack: the verified file indexed whole. */
const pullsWholeFile = (t: ExecutionContext, w: World) => pullsInto(t, w, 1, 'only the pack of the whole file');

test('parts whose objects link to a later part: the pull indexes the verified file as a whole and ends with the origin refs', async (t) => {
  const w = await world(t, ['--parts', '1']);
  await publishParts(w, await commitsFirstParts(w));
  await pullsWholeFile(t, w);
});

const lies: [string, (parts: PackPart[]) => PackPart[]][] = [
  [
    'a boundary moved 7 bytes into an object',
    (p) =>
      p.map((x, k) =>
        k === 0 ? { ...x, size: x.size + 7 } : k === 1 ? { ...x, offset: x.offset + 7, size: x.size - 7 } : x,
      ),
  ],
  [
    'object counts that do not add up to the pack header',
    (p) => p.map((x, k) => (k === 0 ? { ...x, objects: x.objects - 1 } : x)),
  ],
  [
    'the sizes of the first two parts swapped',
    (p) => {
      const [a, b] = [p[0]!, p[1]!];
      return [{ ...b, offset: a.offset }, { ...a, offset: a.offset + b.size }, ...p.slice(2)];
    },
  ],
];

for (const [what, lie] of lies) {
  test(`an index.json with ${what}: the verified file is indexed as a whole, the origin's refs`, async (t) => {
    const w = await parted(t);
    await publishParts(w, lie((await w.index()).bundles[0]!.parts!));
    await pullsWholeFile(t, w);
  });
}

test("an index.json whose every part claims to need no other is proved all the same: the origin's refs, fsck clean", async (t) => {
  const w = await parted(t);
  await publishParts(
    w,
    (await w.index()).bundles[0]!.parts!.map((p) => ({ ...p, after: 0 })),
  );
  // indexed side by side, each part's links are checked against what is in when it ends: a part whose
  // links are not all there fails, and the verified file is indexed as a whole
  const { toplevel, config } = await replicaThrough(t, w, 'replica');
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  const check = await checkRepo(w.toplevel, toplevel, PATH);
  t.true(check.ok, check.why);
  t.is(await fingerprintOf(join(toplevel, PATH)), await fingerprintOf(w.bare));
  t.deepEqual(await leftovers(toplevel), []);
});

const refused: [string, (parts: PackPart[]) => PackPart[]][] = [
  ['overlapping parts', (p) => p.map((x, k) => (k === 1 ? { ...x, offset: x.offset - 100, size: x.size + 100 } : x))],
  ['a part claiming 4 billion objects', (p) => p.map((x, k) => (k === 0 ? { ...x, objects: 2 ** 32 - 1 } : x))],
  ['parts that stop before the trailer', (p) => p.slice(0, -1)],
  ['a part waiting for a part after it', (p) => p.map((x, k) => (k === 1 ? { ...x, after: 2 } : x))],
];

for (const [what, lie] of refused) {
  test(`an index.json with ${what} is refused: E_INDEX naming the repository, no repository made`, async (t) => {
    const w = await parted(t);
    await publishParts(w, lie((await w.index()).bundles[0]!.parts!));
    const { toplevel, config } = await replicaThrough(t, w, 'replica');
    const r = await pull(config);
    t.is(r.code, 1, r.stderr);
    const failed = r.report.repos.find((x) => x.path === PATH);
    t.is(failed?.action, 'failed');
    t.is(failed?.error?.code, 'E_INDEX');
    await t.throwsAsync(stat(join(toplevel, PATH)));
  });
}
