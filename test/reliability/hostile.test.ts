/**
 * Hostile or broken input from an origin: manifests, index.json files and
 * bundles crafted by hand and served by the real `startServer`. Each bad
 * entry is refused with a message that names it; nothing is written outside
 * the replica's toplevel; the other repositories still sync; a corrupt or
 * foreign bundle never moves a ref, even when a forged index vouches for its
 * sha256 and size.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { git } from '../../src/git/exec.js';
import { refNameProblem } from '../../src/git/refname.js';
import { parseManifest } from '../../src/manifest/manifest.js';
import { serializeRepoIndex, type RepoIndex } from '../../src/manifest/repo-index.js';
import { publish } from '../../src/origin/publish.js';
import { loadPullConfig } from '../../src/replica/config/config.js';
import { memoryLog } from '../../src/replica/log.js';
import { pull as pullInProcess } from '../../src/replica/pull.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { runCli } from '../support/cli.js';
import { writeConfig } from '../support/mirror.js';
import { readIndex, snapshot, startCli, verifyMirror, leftovers } from '../support/reliability.js';
import { makeRepo, showRefOf, tempDir, type WorkTree } from '../support/repos.js';

interface World {
  dir: string;
  originTop: string;
  out: string;
  server: RunningServer;
  /** A directory beside the replica that nothing may touch. */
  outside: string;
  /** The replica's toplevel; its parent holds nothing else. */
  toplevel: string;
  parent: string;
  config: string;
  worktrees: Record<string, WorkTree>;
}

async function world(
  t: ExecutionContext,
  repos: string[],
  opts: { site?: string; bytesPerCommit?: number } = {},
): Promise<World> {
  const { dir, cleanup } = await tempDir('bm-hostile-');
  t.teardown(cleanup);
  const originTop = join(dir, 'origin');
  const out = join(dir, 'published');
  const worktrees: Record<string, WorkTree> = {};
  for (const r of repos)
    worktrees[r] = (
      await makeRepo(dir, originTop, r.slice(1), { commits: 2, bytesPerCommit: opts.bytesPerCommit ?? 0 })
    ).wt;
  const report = await publish({ toplevel: originTop, out });
  t.deepEqual(report.failed, []);
  const server = await startServer({ bundles: out, toplevel: originTop, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => server.close({ graceMs: 100 }));
  const outside = join(dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'precious.txt'), 'do not touch\n');
  const parent = join(dir, 'mirror');
  const toplevel = join(parent, 'replica');
  await mkdir(toplevel, { recursive: true });
  const config = await writeConfig(dir, {
    toplevel,
    manifest: `${server.url}/manifest.js.gz`,
    site: opts.site ?? `${server.url}/git`,
  });
  return { dir, originTop, out, server, outside, toplevel, parent, config, worktrees };
}

async function rawManifest(w: World): Promise<Record<string, unknown>> {
  return parseManifest(await readFile(join(w.out, 'manifest.js.gz'))).manifest as Record<string, unknown>;
}

/** Everything outside the toplevel that a pull could conceivably touch. */
async function surroundings(w: World): Promise<string[]> {
  return [
    ...(await snapshot(w.parent, (rel) => rel === 'replica')),
    '--',
    ...(await snapshot(w.outside)),
    '--',
    ...(await snapshot(w.out)),
  ];
}

const pullCli = (w: World, ...args: string[]) => runCli(['pull', '-c', w.config, '--no-progress', ...args]);

// ---------------------------------------------------------------- manifests

test('hostile manifest entries are refused by name, nothing is written outside the toplevel, and the other repositories still sync', async (t) => {
  const w = await world(t, ['/pub/good.git', '/pub/other.git']);
  const m = await rawManifest(w);
  const good = JSON.stringify({
    ...(m['/pub/good.git'] as object),
    symlinks: ['/pub/good-link.git', '/escape/link.git'],
  });
  const copy = JSON.stringify(m['/pub/good.git']);
  // by hand: JSON.stringify could neither repeat a key nor keep this order
  const hostile: [string, string][] = [
    ['"/../evil.git"', copy],
    ['"/pub/../../evil.git"', copy],
    ['"//abs/evil.git"', copy],
    ['"abs/evil.git"', copy],
    ['"/-upload-pack.git"', copy],
    ['"/pub/--config=core.sshCommand=evil.git"', copy],
    ['"/pub/nul\\u0000.git"', copy],
    ['"/pub/new\\nline.git"', copy],
    ['"/pub/esc\\u001b[2J.git"', copy],
    ['"/pub/dup.git"', copy],
    ['"/pub/dup.git"', JSON.stringify({ ...(m['/pub/other.git'] as object) })],
    ['"/pub/dupkey.git"', copy.replace('{', '{"fingerprint": "0000000000000000000000000000000000000000",')],
    ['"/pub/string.git"', '"not an object"'],
    ['"/pub/null.git"', 'null'],
    ['"/pub/fp-number.git"', JSON.stringify({ fingerprint: 12345 })],
    ['"/pub/modified-huge.git"', copy.replace('{', '{"modified": 1e400,')],
    [
      '"/pub/description-huge.git"',
      JSON.stringify({ ...(m['/pub/good.git'] as object), description: 'x'.repeat(70_000) }),
    ],
    [
      '"/pub/symlinks-many.git"',
      JSON.stringify({
        ...(m['/pub/good.git'] as object),
        symlinks: Array.from({ length: 10_001 }, (_, i) => `/l${i}.git`),
      }),
    ],
    [
      '"/pub/symlink-out.git"',
      JSON.stringify({ ...(m['/pub/good.git'] as object), symlinks: ['/../../outside/link.git'] }),
    ],
    ['"/escape/evil.git"', copy],
  ];
  const text = `{\n"/pub/good.git": ${good},\n"/pub/other.git": ${JSON.stringify(m['/pub/other.git'])},\n${hostile.map(([k, v]) => `${k}: ${v}`).join(',\n')}\n}\n`;
  await writeFile(join(w.out, 'manifest.js.gz'), gzipSync(text));
  // a symlink planted in the toplevel that leads outside it
  await symlink(w.outside, join(w.toplevel, 'escape'));

  const before = await surroundings(w);
  const r = await pullCli(w, '--json');
  t.is(r.code, 1, 'refused entries make the run fail');
  const named = [
    '/../evil.git',
    '/pub/../../evil.git',
    '//abs/evil.git',
    'abs/evil.git',
    '/-upload-pack.git',
    '/pub/--config=core.sshCommand=evil.git',
    '"/pub/nul\\u0000.git"',
    '"/pub/new\\nline.git"',
    '"/pub/esc\\u001b[2J.git"',
    '/pub/dup.git',
    '/pub/dupkey.git',
    '/pub/string.git',
    '/pub/null.git',
    '/pub/fp-number.git',
    '/pub/modified-huge.git',
    '/pub/description-huge.git',
    '/pub/symlinks-many.git',
    '/pub/symlink-out.git',
    '/escape/evil.git',
  ];
  for (const name of named) t.true(r.stderr.includes(`${name}: `), `${name} is named: ${r.stderr}`);
  t.regex(r.stderr, /\/pub\/dup\.git: refused manifest entry: is listed twice/);
  t.regex(r.stderr, /\/pub\/dupkey\.git: refused manifest entry: has the key "fingerprint" twice/);
  t.regex(r.stderr, /\/escape\/evil\.git: .*\[E_SYMLINK\]/);
  t.regex(r.stderr, /\/pub\/good\.git: .*\/escape\/link\.git.*\[E_SYMLINK\]/);
  t.false(/[\x00\x1b]/.test(r.stderr), 'no raw control characters reach the terminal');
  t.like(JSON.parse(r.stdout), { counts: { cloned: 2, failed: 19 } });

  t.deepEqual(await surroundings(w), before, 'nothing outside the toplevel changed');
  for (const c of await verifyMirror(w.originTop, w.toplevel, ['/pub/good.git', '/pub/other.git']))
    t.true(c.ok, `${c.path}: ${c.why}`);
  t.is((await stat(join(w.toplevel, 'pub/good-link.git'))).isDirectory(), true, 'the safe symlink was made');
  const top = (
    await snapshot(
      w.toplevel,
      (rel) => rel === '.bundlemirror' || rel.startsWith('pub/good.git') || rel.startsWith('pub/other.git'),
    )
  ).map((l) => l.split(' ')[0]);
  t.deepEqual(top, ['escape', 'manifest.js.gz', 'pub/', 'pub/good-link.git'], 'no directory for any refused entry');
});

test('a gzip bomb manifest (2 MB expanding to 2 GiB) is refused by the unpacked-size limit without exhausting memory', async (t) => {
  const w = await world(t, ['/pub/good.git']);
  const head = gzipSync(Buffer.from('{"/pub/good.git": {"description": "'));
  const member = gzipSync(Buffer.alloc(64 << 20, 0x20), { level: 9 }); // gzip members concatenate
  await writeFile(join(w.out, 'manifest.js.gz'), Buffer.concat([head, ...Array<Buffer>(32).fill(member)]));
  const child = startCli(['pull', '-c', w.config, '--no-progress']);
  let peakKiB = 0;
  const probe = setInterval(() => {
    readFile(`/proc/${child.child.pid}/status`, 'utf8').then(
      (s) => (peakKiB = Math.max(peakKiB, Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0))),
      () => {},
    );
  }, 5);
  const { code } = await child.exited;
  clearInterval(probe);
  t.is(code, 1);
  t.regex(
    child.stderr,
    /manifest\.js\.gz: cannot unpack: it unpacks to more than 128 MiB \(a gzip bomb, or not a manifest\) \[E_MANIFEST\]/,
  );
  t.log(`peak resident memory ${Math.round(peakKiB / 1024)} MiB`);
  t.true(peakKiB > 0 && peakKiB < 400 * 1024, `peak resident memory ${Math.round(peakKiB / 1024)} MiB`);
  t.deepEqual(await readdir(w.toplevel).then((n) => n.filter((x) => x !== '.bundlemirror')), []);
});

// ---------------------------------------------------------------- index.json

test('our ref-name rules agree with git check-ref-format, option-like names included', (t) => {
  const names = [
    'refs/heads/main',
    'refs/heads/a..b',
    'refs/heads/x.lock',
    'refs/heads/x.lock/y',
    'refs/heads/.hidden',
    'refs/heads/sp ace',
    'refs/heads/a~1',
    'refs/heads/a^',
    'refs/heads/a:b',
    'refs/heads/a?',
    'refs/heads/a*',
    'refs/heads/a[',
    'refs/heads/a\\b',
    'refs/heads/end.',
    'refs/heads//double',
    'refs/heads/@{x',
    'refs/heads/@',
    'refs/heads/ctrl\x01',
    'refs/heads/del\x7f',
    'refs/heads/--upload-pack=x',
    'refs/tags/--output=/tmp/canary',
    'refs/heads/-',
    'refs/heads/é',
    'refs/heads/a/.b',
    'refs/heads/a/',
    'refs/heads/a@b',
    'refs/heads/tab\t',
    'refs/heads/a.lock.b',
    'refs/heads/x/.lock',
    'refs/heads/%41',
  ];
  for (const name of names) {
    const gitSays = spawnSync('git', ['check-ref-format', name]).status === 0;
    t.is(refNameProblem(name) === null, gitSays, `${JSON.stringify(name)}: git says ${gitSays ? 'valid' : 'invalid'}`);
  }
});

test('hostile index.json files are refused naming their repository, and the other repositories still sync', async (t) => {
  const repos = [
    '/pub/good.git',
    '/pub/badref.git',
    '/pub/dupref.git',
    '/pub/huge.git',
    '/pub/types.git',
    '/pub/foreign.git',
    '/pub/wrongpath.git',
    '/pub/badhead.git',
  ];
  const w = await world(t, repos);
  const edit = async (path: string, change: (index: RepoIndex, text: string) => string) => {
    const file = join(w.out, path.slice(1), 'index.json');
    const index = await readIndex(w.out, path);
    await writeFile(file, change(index, await readFile(file, 'utf8')));
  };
  await edit('/pub/badref.git', (ix) =>
    serializeRepoIndex({ ...ix, refs: { ...ix.refs, 'refs/heads/a..b': Object.values(ix.refs)[0]! } }),
  );
  await edit('/pub/dupref.git', (_ix, text) =>
    text.replace('"refs": {', `"refs": {\n  "refs/heads/main": "${'0'.repeat(40)}",`),
  );
  await edit('/pub/huge.git', (ix) =>
    serializeRepoIndex({ ...ix, bundles: ix.bundles.map((b) => ({ ...b, size: 2 ** 53 })) }),
  );
  await edit('/pub/types.git', (ix) => JSON.stringify({ ...ix, refs: [], bundles: 'all of them' }));
  await edit('/pub/foreign.git', (ix) =>
    serializeRepoIndex({ ...ix, bundles: ix.bundles.map((b) => ({ ...b, uri: `http://example.invalid/${b.uri}` })) }),
  );
  await edit('/pub/wrongpath.git', (ix) => serializeRepoIndex({ ...ix, path: '/pub/good.git' }));
  await edit('/pub/badhead.git', (ix) => serializeRepoIndex({ ...ix, head: 'ref: refs/heads/../../../outside' }));
  const m = await rawManifest(w);
  m['/pub/badhead.git'] = { ...(m['/pub/badhead.git'] as object), head: 'ref: refs/heads/../../../outside' };
  await writeFile(join(w.out, 'manifest.js.gz'), gzipSync(JSON.stringify(m)));

  const before = await surroundings(w);
  const r = await pullCli(w, '--json');
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /\/pub\/badref\.git: index\.json refs has the ref "refs\/heads\/a\.\.b", which contains "\.\." \[E_INDEX\]/,
  );
  t.regex(r.stderr, /\/pub\/dupref\.git: index\.json has the key "refs\/heads\/main" twice in refs \[E_INDEX\]/);
  t.regex(r.stderr, /\/pub\/huge\.git: index\.json is malformed: bundles\.0\.size: .* \[E_INDEX\]/);
  t.regex(r.stderr, /\/pub\/types\.git: index\.json is malformed: .* \[E_INDEX\]/);
  t.regex(
    r.stderr,
    /\/pub\/foreign\.git: bundle http:\/\/example\.invalid\/.* points outside the published tree \[E_INDEX\]/,
  );
  t.regex(r.stderr, /\/pub\/wrongpath\.git: index\.json describes "\/pub\/good\.git", not this repository \[E_INDEX\]/);
  t.regex(
    r.stderr,
    /\/pub\/badhead\.git: HEAD target "refs\/heads\/\.\.\/\.\.\/\.\.\/outside" contains "\.\." \[E_UNSAFE_NAME\]/,
  );
  t.like(JSON.parse(r.stdout), { counts: { cloned: 1, updated: 0, unchanged: 0, failed: 7 } });
  for (const c of await verifyMirror(w.originTop, w.toplevel, ['/pub/good.git'])) t.true(c.ok, `${c.path}: ${c.why}`);
  for (const p of repos.slice(1))
    await t.throwsAsync(stat(join(w.toplevel, p.slice(1))), undefined, `${p} was not created`);
  t.deepEqual(await surroundings(w), before);
  t.deepEqual(
    (await leftovers(w.toplevel)).filter((l) => !l.startsWith('.bundlemirror/bundles/')),
    [],
  );
});

test('refs that git accepts but that look like options are mirrored exactly and never read as options', async (t) => {
  const w = await world(t, ['/pub/odd.git']);
  const bare = join(w.originTop, 'pub/odd.git');
  const head = (await git(['rev-parse', 'HEAD'], { gitDir: bare })).stdout.toString().trim();
  const canary = join(w.dir, 'canary');
  for (const ref of [
    'refs/heads/--upload-pack=touch',
    `refs/tags/--output=${canary.slice(1)}`,
    'refs/heads/-',
    'refs/heads/-f',
    'refs/heads/--end-of-options',
  ]) {
    await git(['update-ref', ref, head], { gitDir: bare });
  }
  await git(['symbolic-ref', 'HEAD', 'refs/heads/--upload-pack=touch'], { gitDir: bare });
  t.deepEqual((await publish({ toplevel: w.originTop, out: w.out })).failed, []);
  const r = await pullCli(w);
  t.is(r.code, 0, r.stderr);
  const replica = join(w.toplevel, 'pub/odd.git');
  t.is(await showRefOf(replica), await showRefOf(bare));
  t.is((await readFile(join(replica, 'HEAD'), 'utf8')).trim(), 'ref: refs/heads/--upload-pack=touch');
  await t.throwsAsync(stat(canary));
  await t.throwsAsync(stat(join(w.toplevel, 'touch')));
  for (const c of await verifyMirror(w.originTop, w.toplevel, ['/pub/odd.git'])) t.true(c.ok, `${c.path}: ${c.why}`);
});

// ---------------------------------------------------------------- bundles

/**
 * Variants of a real incremental bundle, each of which a forged index lists
 * with its true sha256 and size, so that it passes download verification
 * and reaches the later checks.
 */
function corruptions(bundle: Buffer, foreign: Buffer): [string, Buffer][] {
  const headerEnd = bundle.indexOf('\n\n') + 2;
  const firstLineEnd = bundle.indexOf('\n') + 1;
  const refLine = bundle.lastIndexOf('\n', headerEnd - 3) + 1; // the last ref line
  const flip = (at: number): Buffer => {
    const b = Buffer.from(bundle);
    const c = b[at]!;
    // keep hex digits hex, so a flipped object id still parses
    b[at] =
      c >= 0x30 && c <= 0x39
        ? c === 0x39
          ? 0x30
          : c + 1
        : c >= 0x61 && c <= 0x66
          ? c === 0x66
            ? 0x61
            : c + 1
          : c ^ 0x01;
    return b;
  };
  return [
    ['truncated in the signature', bundle.subarray(0, 5)],
    ['truncated after the signature', bundle.subarray(0, firstLineEnd)],
    ['truncated in a prerequisite line', bundle.subarray(0, firstLineEnd + 20)],
    ['truncated in a ref line', bundle.subarray(0, refLine + 30)],
    ['truncated at the end of the header (no pack)', bundle.subarray(0, headerEnd)],
    ['truncated in the pack header', bundle.subarray(0, headerEnd + 10)],
    [
      'truncated in the middle of the pack',
      bundle.subarray(0, headerEnd + Math.floor((bundle.length - headerEnd) / 2)),
    ],
    ['missing the pack trailer', bundle.subarray(0, bundle.length - 20)],
    ['bit flip in the signature', flip(2)],
    ['bit flip in a prerequisite id', flip(firstLineEnd + 5)],
    ['bit flip in the pack', flip(headerEnd + Math.floor((bundle.length - headerEnd) / 2))],
    ['bit flip in the pack trailer', flip(bundle.length - 3)],
    ['a valid bundle of another repository', foreign],
    // last: git ignores a bundle's ref lines on unbundle, and refs come from index.json, so this
    // one may be accepted, but then only with exactly the origin's refs (checked below)
    ['bit flip in a ref line id', flip(refLine + 5)],
  ];
}

test('corrupt and foreign bundles listed with their true sha256 and size (a forged index) are rejected before any ref moves', async (t) => {
  // git fetch must not paper over what the bundles did: its URL leads nowhere
  const w = await world(t, ['/pub/a.git', '/pub/b.git'], { site: 'http://127.0.0.1:9/git', bytesPerCommit: 20_000 });
  const config = loadPullConfig(w.config);
  t.is((await pullInProcess(config, { log: memoryLog() })).failed.length, 0);
  const replica = join(w.toplevel, 'pub/a.git');
  const before = await showRefOf(replica);

  for (const p of ['/pub/a.git', '/pub/b.git']) {
    await w.worktrees[p]!.commit('next', 20_000);
    await w.worktrees[p]!.push('main');
  }
  t.deepEqual((await publish({ toplevel: w.originTop, out: w.out })).failed, []);
  const genuine = await readIndex(w.out, '/pub/a.git');
  const inc = genuine.bundles.find((b) => b.prerequisites.length > 0)!;
  const foreignIndex = await readIndex(w.out, '/pub/b.git');
  const foreign = await readFile(
    join(w.out, 'pub/b.git', foreignIndex.bundles.find((b) => b.prerequisites.length === 0)!.uri),
  );
  const bundle = await readFile(join(w.out, 'pub/a.git', inc.uri));

  for (const [what, bytes] of corruptions(bundle, foreign)) {
    const sha = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(w.out, 'pub/a.git', `${sha}.bundle`), bytes);
    const forged: RepoIndex = {
      ...genuine,
      bundles: genuine.bundles.map((b) =>
        b === inc ? { ...b, uri: `${sha}.bundle`, sha256: sha, size: bytes.length } : b,
      ),
    };
    await writeFile(join(w.out, 'pub/a.git/index.json'), serializeRepoIndex(forged));
    const log = memoryLog();
    const report = await pullInProcess(config, { log, force: true });
    const failure = report.failed.find((e) => e.repo === '/pub/a.git');
    t.log(`${what}: ${failure ? `${failure.code} ${failure.message.slice(0, 90)}` : 'accepted'}`);
    if (failure || what !== 'bit flip in a ref line id') {
      t.truthy(failure, `${what}: refused`);
      t.is(await showRefOf(replica), before, `${what}: no ref moved`);
    } else {
      t.is(
        await showRefOf(replica),
        await showRefOf(join(w.originTop, 'pub/a.git')),
        `${what}: accepted only with exactly the origin's refs`,
      );
    }
    const fsck = await git(['fsck', '--no-dangling'], { gitDir: replica, okCodes: [1, 2, 4] });
    t.is(fsck.code, 0, `${what}: fsck ${fsck.stderr}`);
    t.deepEqual(
      (await leftovers(w.toplevel)).filter((l) => !l.startsWith('.bundlemirror/')),
      [],
      `${what}: no temp packs or locks`,
    );
  }
  // the genuine index again: the next run heals
  await writeFile(join(w.out, 'pub/a.git/index.json'), serializeRepoIndex(genuine));
  const healed = await pullInProcess(config, { log: memoryLog(), force: true });
  t.deepEqual(
    healed.failed.map((e) => e.describe()),
    [],
  );
  for (const c of await verifyMirror(w.originTop, w.toplevel, ['/pub/a.git', '/pub/b.git']))
    t.true(c.ok, `${c.path}: ${c.why}`);
});

test('a fresh clone from a corrupt or foreign base bundle leaves no repository behind', async (t) => {
  const w = await world(t, ['/pub/a.git', '/pub/b.git'], { site: 'http://127.0.0.1:9/git', bytesPerCommit: 20_000 });
  const config = loadPullConfig(w.config);
  const genuine = await readIndex(w.out, '/pub/a.git');
  const base = genuine.bundles[0]!;
  const bytes = await readFile(join(w.out, 'pub/a.git', base.uri));
  const foreignIndex = await readIndex(w.out, '/pub/b.git');
  const foreign = await readFile(join(w.out, 'pub/b.git', foreignIndex.bundles[0]!.uri));
  const headerEnd = bytes.indexOf('\n\n') + 2;
  for (const [what, bad] of [
    ['truncated pack', bytes.subarray(0, headerEnd + Math.floor((bytes.length - headerEnd) / 2))],
    ['no pack at all', bytes.subarray(0, headerEnd)],
    ['a valid bundle of another repository', foreign],
  ] as const) {
    const sha = createHash('sha256').update(bad).digest('hex');
    await writeFile(join(w.out, 'pub/a.git', `${sha}.bundle`), bad);
    await writeFile(
      join(w.out, 'pub/a.git/index.json'),
      serializeRepoIndex({ ...genuine, bundles: [{ ...base, uri: `${sha}.bundle`, sha256: sha, size: bad.length }] }),
    );
    const report = await pullInProcess(config, { log: memoryLog(), force: true });
    t.truthy(
      report.failed.find((e) => e.repo === '/pub/a.git'),
      what,
    );
    await t.throwsAsync(stat(join(w.toplevel, 'pub/a.git')), undefined, `${what}: no repository`);
    t.deepEqual(
      await readdir(join(w.toplevel, '.bundlemirror/staging')).catch(() => []),
      [],
      `${what}: nothing in staging`,
    );
  }
  await rm(join(w.toplevel, '.bundlemirror/bundles'), { recursive: true, force: true });
});

// ---------------------------------------------------------------- the server

test('serve: double-encoded, overlong-UTF-8 and absolute-form traversal, and symlinked directories, never leave the root', async (t) => {
  const w = await world(t, ['/pub/a.git']);
  await writeFile(join(w.outside, 'secret.txt'), 'SECRET\n');
  await git(['init', '--bare', '--quiet', join(w.outside, 'other.git')]);
  await symlink(w.outside, join(w.originTop, 'linkdir'));
  await symlink(w.outside, join(w.out, 'linkdir'));
  const { request } = await import('../support/http.js');
  const targets = [
    '/%252e%252e/outside/secret.txt',
    '/pub/%252e%252e/%252e%252e/outside/secret.txt',
    '/%c0%ae%c0%ae/outside/secret.txt',
    '/%ef%bc%8e%ef%bc%8e/outside/secret.txt',
    '/linkdir/secret.txt',
    `${w.server.url}/../outside/secret.txt`,
    '/git/linkdir/other.git/info/refs?service=git-upload-pack',
    '/git/%252e%252e/outside/other.git/info/refs?service=git-upload-pack',
    '/git/pub/a.git/../../../outside/other.git/info/refs?service=git-upload-pack',
  ];
  for (const target of targets) {
    const r = await request(w.server.url, target);
    t.true(r.status === 400 || r.status === 404, `${target} -> ${r.status}`);
    t.false(r.body.toString('latin1').includes('SECRET'), target);
  }
  // push in every spelling is refused; an upload-pack advertisement asking for receive-pack too stays read-only
  for (const target of [
    '/git/pub/a.git/info/refs?service=git-receive-pack',
    '/git/pub/a.git/info/refs?service=git-upload-pack&service=git-receive-pack',
  ]) {
    const r = await request(w.server.url, target);
    t.false(r.body.toString('latin1').includes('report-status'), `${target} advertises no push capabilities`);
  }
  const post = await request(w.server.url, '/git/pub/a.git/git-receive-pack?service=git-upload-pack', {
    method: 'POST',
    body: '0000',
  });
  t.is(post.status, 403);
});
