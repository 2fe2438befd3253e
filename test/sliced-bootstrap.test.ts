/**
 * Bootstrapping a new repository while its bundles download: a base
 * published as one bundle or as a chain of history slices (`publish
 * --slices`), pulled through a link that cuts, with a byte flipped on the
 * wire, killed mid-way; and stock `git clone --bundle-uri` reading the
 * same bundle-list. The result is always the origin's refs (fingerprint
 * equal, fsck clean) or the old state with nothing index-pack wrote left.
 */
import test, { type ExecutionContext } from 'ava';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import { runCli, startCli } from './support/cli.js';
import { fingerprintOf, replicaThrough, startHistoryOrigin } from './support/mirror.js';
import { showRefOf } from './support/repos.js';
import { checkRepo, FAST_ENV, leftovers, partialPast } from './support/reliability.js';

const PATH = '/pub/history.git';
const world = (t: ExecutionContext, slices: number) =>
  startHistoryOrigin(t, ['--slices', String(slices), '--slice-min-mib', '0']);

const pull = (config: string) => runCli(['pull', '-c', config, '--no-progress', '-v'], { env: FAST_ENV });

/** Every pack file anywhere under the replica's toplevel (repositories and staging). */
async function packsUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.(pack|idx)$/.test(e.name)) found.push(p);
    }
  };
  await walk(dir);
  return found;
}

test('a base published as 3 slices is a chain of bundles, each on the one before, adding up to the same refs', async (t) => {
  const w = await world(t, 3);
  const index = await w.index();
  t.is(index.bundles.length, 3);
  t.deepEqual(
    index.bundles.map((b) => b.slice),
    [undefined, 1, 2],
  );
  t.deepEqual(index.bundles[0]!.prerequisites, []);
  for (let k = 1; k < 3; k++)
    t.deepEqual(
      index.bundles[k]!.prerequisites,
      Object.values(index.bundles[k - 1]!.tips),
      `slice ${k} builds on ${k - 1}`,
    );
  t.is(index.bundles[2]!.tips['refs/heads/main'], index.refs['refs/heads/main'], 'the last slice brings the branches');
  const sliced = index.bundles.reduce((n, b) => n + b.size, 0);
  const whole = await world(t, 1);
  const one = (await whole.index()).bundles;
  t.is(one.length, 1);
  t.log(`3 slices: ${sliced} bytes; one base: ${one[0]!.size} bytes (${(sliced / one[0]!.size).toFixed(2)}x)`);
});

for (const slices of [1, 3]) {
  const what = slices === 1 ? 'one base bundle' : 'a base in 3 slices';

  test(`${what}, pulled through a link cut every 160 KiB, ends with the origin's refs, fsck clean, nothing left over`, async (t) => {
    const w = await world(t, slices);
    const { proxy, toplevel, config } = await replicaThrough(t, w, 'replica', { cutAfterBytes: 160 * 1024 });
    const r = await pull(config);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, new RegExp(`${slices} of ${slices} bundle\\(s\\)|bundle\\(s\\) indexed`));
    t.true(proxy.stats.cuts >= 2, `the link was cut ${proxy.stats.cuts} times`);
    const check = await checkRepo(w.toplevel, toplevel, PATH);
    t.true(check.ok, check.why);
    t.is(await fingerprintOf(join(toplevel, PATH)), await fingerprintOf(w.bare));
    t.deepEqual(await leftovers(toplevel), []);
  });

  test(`${what} with one byte flipped on the server: exit 1, E_BUNDLE_VERIFY, no repository and no pack kept; fixed, the next pull completes`, async (t) => {
    const w = await world(t, slices);
    const index = await w.index();
    const last = index.bundles.at(-1)!;
    const file = join(w.out, 'pub', 'history.git', last.uri);
    const good = await readFile(file);
    const bad = Buffer.from(good);
    const at = Math.floor(bad.length * 0.6);
    bad[at] = bad[at]! ^ 0x01;
    await writeFile(file, bad);
    const { toplevel, config } = await replicaThrough(t, w, 'replica');
    const r = await pull(config);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /E_BUNDLE_VERIFY/);
    t.regex(r.stderr, /\/pub\/history\.git/);
    await t.throwsAsync(stat(join(toplevel, PATH)), undefined, 'no repository is made from unverified bytes');
    t.deepEqual(await packsUnder(toplevel), [], 'nothing index-pack wrote is kept');
    await writeFile(file, good);
    const again = await pull(config);
    t.is(again.code, 0, again.stderr);
    t.is(await showRefOf(join(toplevel, PATH)), await showRefOf(w.bare));
  });
}

test('a pull killed while a sliced base downloads leaves no pack a later run could take as verified; the next run resumes and completes', async (t) => {
  const w = await world(t, 3);
  const total = (await w.index()).bundles.reduce((n, b) => n + b.size, 0);
  const { toplevel, config } = await replicaThrough(t, w, 'replica', { bytesPerSecond: Math.ceil(total / 3) });
  const run = startCli(t, ['pull', '-c', config, '--no-progress'], { env: FAST_ENV });
  await partialPast(toplevel, 0); // some bytes are on disk: kill
  run.signal('SIGKILL');
  await run.done;
  await t.throwsAsync(stat(join(toplevel, PATH)), undefined, 'no repository yet');
  const again = await pull(config);
  t.is(again.code, 0, again.stderr);
  const check = await checkRepo(w.toplevel, toplevel, PATH);
  t.true(check.ok, check.why);
  t.deepEqual(await leftovers(toplevel), []);
});

test('stock git clone --bundle-uri takes a sliced base from the bundle-list: the same refs as the origin', async (t) => {
  const w = await world(t, 3);
  const dest = join(w.dir, 'stock.git');
  const r = await git(
    ['clone', '--quiet', '--mirror', `--bundle-uri=${w.url}${PATH}/bundle-list`, `${w.url}/git${PATH}`, dest],
    {},
  );
  t.is(r.code, 0, r.stderr);
  const bundleRefs = (await showRefOf(dest)).split('\n').filter((l) => l.includes(' refs/bundles/'));
  t.true(bundleRefs.length > 0, 'git unbundled the bundles (it records their branches under refs/bundles/)');
  const own = (await showRefOf(dest))
    .split('\n')
    .filter((l) => l && !l.includes(' refs/bundles/'))
    .join('\n');
  t.is(own + '\n', await showRefOf(w.bare));
});
