/**
 * `bundlemirror serve` over real HTTP on 127.0.0.1: byte ranges and
 * validators as a resuming downloader relies on them, refusal of every way
 * out of the published tree, read-only smart HTTP with the real git client,
 * and the page for people.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Agent, get as httpGet, type IncomingMessage } from 'node:http';
import { Command } from 'commander';
import { git, gitText } from '../src/git/exec.js';
import { createBundle, fingerprint } from '../src/git/repo.js';
import { renderBundleList } from '../src/manifest/bundle-list.js';
import { writeManifestFile, type Manifest } from '../src/manifest/manifest.js';
import { repoIndexSchemas, serializeRepoIndex, type RepoIndex } from '../src/manifest/repo-index.js';
import { BundlemirrorError } from '../src/errors.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { parseRange } from '../src/server/range.js';
import { registerServe } from '../src/cli/serve.js';
import { initBareRepo, makeRepo, showRefOf, tempDir, type WorkTree } from './support/repos.js';
import { prng, request } from './support/http.js';
import { servedUrl } from './support/cli.js';
import { eventually } from './support/daemon.js';

const DESCRIPTION = 'Kernel <script>alert("x")</script> & friends';

interface Fixture {
  root: string;
  bundles: string;
  toplevel: string;
  bare: string;
  wt: WorkTree;
  sha: string;
  bundle: Buffer;
  bundlePath: string;
  server: RunningServer;
  url: string;
  logs: string[];
  cleanup: () => Promise<void>;
}

/** A published tree built by hand (not by `publish`): one real bundle, its index, bundle-list and manifest. */
async function buildFixture(): Promise<Fixture> {
  const { dir: root, cleanup } = await tempDir('bm-serve-');
  const toplevel = join(root, 'top');
  const bundles = join(root, 'bundles');
  const { bare, wt } = await makeRepo(root, toplevel, 'pub/a.git', { commits: 3, bytesPerCommit: 3000 });

  const repoDir = join(bundles, 'pub', 'a.git');
  await mkdir(repoDir, { recursive: true });
  const tmp = join(repoDir, 'tmp.bundle');
  await createBundle(bare, tmp, 'all');
  const bundle = await readFile(tmp);
  const sha = createHash('sha256').update(bundle).digest('hex');
  const bundlePath = `/pub/a.git/${sha}.bundle`;
  await rename(tmp, join(repoDir, `${sha}.bundle`));

  const fp = await fingerprint(bare);
  const refs = Object.fromEntries(fp.refs.map((r) => [r.name, r.oid]));
  const index: RepoIndex = repoIndexSchemas().RepoIndexSchema.parse({
    version: 1,
    path: '/pub/a.git',
    generated: new Date().toISOString(),
    fingerprint: fp.fingerprint,
    head: 'ref: refs/heads/main',
    refs,
    bundles: [
      { uri: `${sha}.bundle`, sha256: sha, size: bundle.length, creationToken: 1, prerequisites: [], tips: refs },
    ],
  });
  await writeFile(join(repoDir, 'index.json'), serializeRepoIndex(index));
  await writeFile(join(repoDir, 'bundle-list'), renderBundleList(index.bundles, null));
  await writeManifestFile(join(bundles, 'manifest.js.gz'), {
    '/pub/a.git': {
      fingerprint: fp.fingerprint,
      modified: 1_700_000_000,
      head: 'ref: refs/heads/main',
      description: DESCRIPTION,
      owner: 'Ann <ann@example.invalid>',
    },
  });

  // things that must never be served
  const outside = join(root, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'secret.txt'), 'SECRET-OUTSIDE\n');
  await writeFile(join(bundles, '.publish.lock'), 'SECRET-LOCK\n');
  await writeFile(join(repoDir, '.hidden'), 'SECRET-HIDDEN\n');
  await mkdir(join(bundles, '.private'));
  await writeFile(join(bundles, '.private', 'x.bundle'), 'SECRET-DOTDIR\n');
  await symlink(join(outside, 'secret.txt'), join(repoDir, 'leak.bundle'));
  await symlink(outside, join(bundles, 'pub', 'escape'));
  await symlink(join(bundles, '.publish.lock'), join(repoDir, 'lock.bundle'));

  // repositories smart HTTP must not serve: outside the toplevel, not bare, not a repository
  await initBareRepo(join(outside, 'other.git'));
  await symlink(join(outside, 'other.git'), join(toplevel, 'sneaky.git'));
  await git(['init', '--quiet', join(toplevel, 'work')]);

  const logs: string[] = [];
  const server = await startServer({ bundles, toplevel, host: '127.0.0.1', port: 0, log: (l) => logs.push(l) });
  return {
    root,
    bundles,
    toplevel,
    bare,
    wt,
    sha,
    bundle,
    bundlePath,
    server,
    url: server.url,
    logs,
    cleanup: async () => {
      await server.close({ graceMs: 1000 });
      await cleanup();
    },
  };
}

/** Adds a repository to a published tree's manifest, as a publish of it would. */
async function listInManifest(bundles: string, repoPath: string): Promise<void> {
  const file = join(bundles, 'manifest.js.gz');
  const manifest = JSON.parse(gunzipSync(await readFile(file)).toString()) as Manifest;
  manifest[repoPath] = { modified: 1_700_000_000 };
  await writeManifestFile(file, manifest);
}

let fixture: Promise<Fixture> | undefined;
const fx = () => (fixture ??= buildFixture());

test.after.always(async () => {
  if (fixture) await (await fixture).cleanup();
});

// ---------------------------------------------------------------- static files and ranges

test('a bundle is served whole with a strong sha256 ETag, immutable caching and no compression', async (t) => {
  const f = await fx();
  const r = await request(f.url, f.bundlePath, { headers: { 'Accept-Encoding': 'gzip, br' } });
  t.is(r.status, 200);
  t.true(r.body.equals(f.bundle));
  t.is(r.headers['content-length'], String(f.bundle.length));
  t.is(r.headers['accept-ranges'], 'bytes');
  t.is(r.headers.etag, `"${f.sha}"`);
  t.is(r.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.is(r.headers['content-type'], 'application/octet-stream');
  t.is(r.headers['content-encoding'], undefined);
  t.truthy(r.headers['last-modified']);
});

test('a single range is answered 206 with Content-Range and exactly those bytes', async (t) => {
  const f = await fx();
  const size = f.bundle.length;
  const cases: [string, number, number][] = [
    ['bytes=10-19', 10, 19],
    ['bytes=100-', 100, size - 1],
    ['bytes=-5', size - 5, size - 1],
    [`bytes=0-${size + 1000}`, 0, size - 1],
    [`bytes=-${size + 1000}`, 0, size - 1],
  ];
  for (const [range, start, end] of cases) {
    const r = await request(f.url, f.bundlePath, { headers: { Range: range } });
    t.is(r.status, 206, range);
    t.is(r.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
    t.is(r.headers['content-length'], String(end - start + 1), range);
    t.true(r.body.equals(f.bundle.subarray(start, end + 1)), range);
  }
});

test('a range beyond the end is 416 with bytes */size and no file bytes', async (t) => {
  const f = await fx();
  const size = f.bundle.length;
  for (const range of [`bytes=${size}-`, `bytes=${size + 10}-${size + 20}`, 'bytes=-0']) {
    const r = await request(f.url, f.bundlePath, { headers: { Range: range } });
    t.is(r.status, 416, range);
    t.is(r.headers['content-range'], `bytes */${size}`, range);
    t.false(r.body.includes(f.bundle.subarray(0, 16)), range);
  }
});

test('parseRange follows RFC 9110 for the edge cases', (t) => {
  t.deepEqual(parseRange(undefined, 10), { kind: 'full' });
  t.deepEqual(parseRange('bytes=0-0', 10), { kind: 'partial', start: 0, end: 0 });
  t.deepEqual(parseRange('bytes=9-', 10), { kind: 'partial', start: 9, end: 9 });
  t.deepEqual(parseRange('bytes=10-', 10), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=-0', 10), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=-20', 10), { kind: 'partial', start: 0, end: 9 });
  t.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('bytes=-1', 0), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange('Bytes = 2-3', 10), { kind: 'partial', start: 2, end: 3 });
  t.deepEqual(parseRange('bytes=2-3,', 10), { kind: 'partial', start: 2, end: 3 });
  t.deepEqual(parseRange('bytes=3-2', 10), { kind: 'full' });
  t.deepEqual(parseRange('bytes=1-2,4-5', 10), { kind: 'full' });
  t.deepEqual(parseRange(`bytes=${'9'.repeat(400)}-`, 10), { kind: 'unsatisfiable' });
  t.deepEqual(parseRange(`bytes=0-${'9'.repeat(400)}`, 10), { kind: 'partial', start: 0, end: 9 });
});

test('several ranges, unknown units and malformed ranges get the whole file (200)', async (t) => {
  const f = await fx();
  for (const range of ['bytes=0-1,5-9', 'bytes=0-0,-1', 'items=0-5', 'bytes=5-2', 'bytes=abc', 'bytes=--1']) {
    const r = await request(f.url, f.bundlePath, { headers: { Range: range } });
    t.is(r.status, 200, range);
    t.true(r.body.equals(f.bundle), range);
    t.is(r.headers['content-range'], undefined, range);
  }
});

test('If-Range with the strong ETag resumes (206); any other validator gets the whole file (200)', async (t) => {
  const f = await fx();
  const match = await request(f.url, f.bundlePath, { headers: { Range: 'bytes=100-', 'If-Range': `"${f.sha}"` } });
  t.is(match.status, 206);
  t.true(match.body.equals(f.bundle.subarray(100)));

  const stale = `"${'0'.repeat(64)}"`;
  const lastModified = match.headers['last-modified']!;
  for (const ifRange of [stale, `W/"${f.sha}"`, lastModified]) {
    const r = await request(f.url, f.bundlePath, { headers: { Range: 'bytes=100-', 'If-Range': ifRange } });
    t.is(r.status, 200, ifRange);
    t.true(r.body.equals(f.bundle), ifRange);
    t.is(r.headers['content-range'], undefined, ifRange);
  }
});

test('HEAD answers the same headers as GET and no body', async (t) => {
  const f = await fx();
  const get = await request(f.url, f.bundlePath);
  const head = await request(f.url, f.bundlePath, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body.length, 0);
  for (const h of ['content-length', 'etag', 'last-modified', 'cache-control', 'content-type', 'accept-ranges']) {
    t.is(head.headers[h], get.headers[h], h);
  }
  const ranged = await request(f.url, f.bundlePath, { method: 'HEAD', headers: { Range: 'bytes=10-19' } });
  t.is(ranged.status, 206);
  t.is(ranged.headers['content-length'], '10');
  t.is(ranged.body.length, 0);
});

test('the manifest is application/gzip, revalidated, and answers 304 to If-None-Match and If-Modified-Since', async (t) => {
  const f = await fx();
  const r = await request(f.url, '/manifest.js.gz', { headers: { 'Accept-Encoding': 'gzip' } });
  t.is(r.status, 200);
  t.true(r.body.equals(await readFile(join(f.bundles, 'manifest.js.gz'))));
  t.is(r.headers['content-type'], 'application/gzip');
  t.is(r.headers['content-encoding'], undefined);
  t.is(r.headers['cache-control'], 'no-cache');
  t.true(Object.keys(JSON.parse(gunzipSync(r.body).toString())).includes('/pub/a.git'));
  const etag = r.headers.etag!;
  t.regex(etag, /^"[^"]+"$/, 'strong ETag');

  const inm = await request(f.url, '/manifest.js.gz', { headers: { 'If-None-Match': etag } });
  t.is(inm.status, 304);
  t.is(inm.body.length, 0);
  t.is(inm.headers.etag, etag);
  const inmList = await request(f.url, '/manifest.js.gz', { headers: { 'If-None-Match': `"other", W/${etag}` } });
  t.is(inmList.status, 304);
  const ims = await request(f.url, '/manifest.js.gz', {
    headers: { 'If-Modified-Since': r.headers['last-modified']! },
  });
  t.is(ims.status, 304);
  const older = await request(f.url, '/manifest.js.gz', {
    headers: { 'If-Modified-Since': 'Sat, 01 Jan 2000 00:00:00 GMT' },
  });
  t.is(older.status, 200);
  const changed = await request(f.url, '/manifest.js.gz', {
    headers: { 'If-None-Match': '"something-else"', 'If-Modified-Since': r.headers['last-modified']! },
  });
  t.is(changed.status, 200, 'If-None-Match wins over If-Modified-Since');
});

test('index.json is application/json, revalidated, with 304 on both validators', async (t) => {
  const f = await fx();
  const r = await request(f.url, '/pub/a.git/index.json');
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'application/json');
  t.is(r.headers['cache-control'], 'no-cache');
  t.is(repoIndexSchemas().RepoIndexSchema.parse(JSON.parse(r.body.toString())).bundles[0]!.sha256, f.sha);
  t.is((await request(f.url, '/pub/a.git/index.json', { headers: { 'If-None-Match': r.headers.etag! } })).status, 304);
  t.is(
    (await request(f.url, '/pub/a.git/index.json', { headers: { 'If-Modified-Since': r.headers['last-modified']! } }))
      .status,
    304,
  );
});

test('bundle-list is served with absolute bundle URLs for the Host the client used', async (t) => {
  const f = await fx();
  const r = await request(f.url, '/pub/a.git/bundle-list');
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'text/plain; charset=utf-8');
  t.is(r.headers['cache-control'], 'no-cache');
  const text = r.body.toString();
  t.true(text.includes(`uri = ${f.url}/pub/a.git/${f.sha}.bundle`), text);
  t.is(r.headers['content-length'], String(r.body.length));

  const named = await request(f.url, '/pub/a.git/bundle-list', { headers: { Host: 'mirror.example.org:8443' } });
  t.true(named.body.toString().includes(`uri = http://mirror.example.org:8443/pub/a.git/${f.sha}.bundle`));

  // a Host that is not host[:port] is not echoed into URLs
  const forged = await request(f.url, '/pub/a.git/bundle-list', { headers: { Host: 'evil.example/x?' } });
  t.is(forged.status, 200);
  t.false(forged.body.toString().includes('evil'));
  t.true(forged.body.toString().includes(`uri = ${f.url}/pub/a.git/`));

  t.is((await request(f.url, '/pub/a.git/bundle-list', { headers: { 'If-None-Match': r.headers.etag! } })).status, 304);
});

test('ranges hold for random Range headers: never 5xx, every 206 is the right slice', async (t) => {
  const f = await fx();
  const size = f.bundle.length;
  const rand = prng(0xb0d1e5);
  const int = (n: number) => Math.floor(rand() * n);
  const num = () => {
    const choices = [
      0,
      1,
      size - 1,
      size,
      size + 1,
      int(size),
      int(size * 2),
      int(10),
      2 ** 53,
      Number.MAX_SAFE_INTEGER,
    ];
    return choices[int(choices.length)]!;
  };
  const spec = (): string => {
    switch (int(8)) {
      case 0:
        return `${num()}-${num()}`;
      case 1:
        return `${num()}-`;
      case 2:
        return `-${num()}`;
      case 3:
        return `${num()}`;
      case 4:
        return ` ${num()} - ${num()} `;
      case 5:
        return '9'.repeat(1 + int(40)) + '-';
      case 6:
        return ['', '-', 'x-1', '1-x', '--', '0x10-0x20', '1e3-', '-1-2'][int(8)]!;
      default:
        return `${int(size)}-${int(size)}`;
    }
  };
  const header = (): string => {
    const unit = ['bytes=', 'bytes=', 'bytes=', 'BYTES=', 'bytes =', 'byte=', ''][int(7)]!;
    const n = 1 + (rand() < 0.8 ? 0 : int(3));
    return unit + Array.from({ length: n }, spec).join(rand() < 0.5 ? ',' : ', ');
  };
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  try {
    for (let i = 0; i < 300; i++) {
      const range = header();
      const r = await request(f.url, f.bundlePath, { headers: { Range: range }, agent });
      const what = `#${i} Range: ${range} -> ${r.status}`;
      t.true([200, 206, 416].includes(r.status), what);
      t.is(Number(r.headers['content-length']), r.body.length, what);
      if (r.status === 200) t.true(r.body.equals(f.bundle), what);
      if (r.status === 416) t.is(r.headers['content-range'], `bytes */${size}`, what);
      if (r.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(r.headers['content-range'] ?? '');
        t.truthy(m, what);
        const [start, end, total] = [Number(m![1]), Number(m![2]), Number(m![3])];
        t.is(total, size, what);
        t.true(start <= end && end < size, what);
        t.true(r.body.equals(f.bundle.subarray(start, end + 1)), what);
        t.deepEqual(parseRange(range, size), { kind: 'partial', start, end }, what);
      }
    }
  } finally {
    agent.destroy();
  }
});

// ---------------------------------------------------------------- nothing outside the tree

test('traversal, encoded traversal, symlinks out of the root and dotfiles are refused without leaking bytes', async (t) => {
  const f = await fx();
  const targets = [
    '/../outside/secret.txt',
    '/pub/../../outside/secret.txt',
    '/%2e%2e/outside/secret.txt',
    '/%2E%2E/%2e%2e/outside/secret.txt',
    '/pub/a.git/..%2f..%2f..%2foutside%2fsecret.txt',
    '/pub/a.git/%2e%2e%2f%2e%2e%2f..%2foutside/secret.txt',
    '/pub\\..\\..\\outside\\secret.txt',
    '/pub/a.git/index.json%00',
    '/pub/a.git/%00',
    '/pub/a.git/leak.bundle',
    '/pub/a.git/lock.bundle',
    '/pub/escape/secret.txt',
    '/.publish.lock',
    '/%2epublish.lock',
    '/pub/a.git/.hidden',
    '/.private/x.bundle',
    '/%2e%2e',
    '//outside/secret.txt',
    '/pub/a.git/%E0%A4%A',
  ];
  for (const target of targets) {
    for (const method of ['GET', 'HEAD']) {
      const r = await request(f.url, target, { method });
      t.true(r.status === 400 || r.status === 404, `${method} ${target} -> ${r.status}`);
      t.false(r.body.toString('latin1').includes('SECRET'), `${method} ${target} leaked`);
    }
  }
});

test('directories are never listed', async (t) => {
  const f = await fx();
  for (const target of ['/pub', '/pub/', '/pub/a.git', '/pub/a.git/', '/pub/escape', '/pub/escape/']) {
    const r = await request(f.url, target);
    t.is(r.status, 404, target);
    t.false(r.body.toString().includes('index.json'), target);
    t.false(r.body.toString().includes('secret'), target);
  }
});

test('writes to the published tree are refused with 405', async (t) => {
  const f = await fx();
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await request(f.url, '/pub/a.git/index.json', { method, body: 'x' });
    t.is(r.status, 405, method);
    t.is(r.headers.allow, 'GET, HEAD');
  }
});

test('every request leaves one access-log line with method, path, status and bytes', async (t) => {
  const f = await fx();
  const r = await request(f.url, '/pub/a.git/index.json?log-probe');
  // the client can hold the whole body before the server's 'finish' (which writes the line) has run
  const lines = await eventually(async () => {
    const found = f.logs.filter((l) => l.includes('/pub/a.git/index.json?log-probe'));
    return found.length ? found : undefined;
  });
  t.is(lines.length, 1);
  t.regex(lines[0]!, new RegExp(` GET /pub/a\\.git/index\\.json\\?log-probe 200 ${r.body.length}B [0-9.]+ms$`));
});

// ---------------------------------------------------------------- smart HTTP

test('git clone over /git/ gets exactly the origin refs and checks out its HEAD', async (t) => {
  const f = await fx();
  const dest = join(f.root, 'clone-mirror.git');
  await git(['clone', '--quiet', '--mirror', `${f.url}/git/pub/a.git`, dest]);
  t.is(await showRefOf(dest), await showRefOf(f.bare));

  // a non-bare clone checks out the origin's HEAD
  const work = join(f.root, 'clone-work');
  await git(['clone', '--quiet', `${f.url}/git/pub/a.git`, work]);
  t.is(
    await gitText(['rev-parse', 'HEAD'], { cwd: work }),
    await gitText(['rev-parse', 'refs/heads/main'], { gitDir: f.bare }),
  );
});

// serial: it rewrites the shared manifest, and serial tests finish before the concurrent ones start,
// so the manifest's validators cannot change between two requests of another test
test.serial('git fetch over /git/ picks up what the origin gained', async (t) => {
  const f = await fx();
  // its own origin, so the other tests' view of pub/a.git never changes under them
  const { bare, wt } = await makeRepo(f.root, f.toplevel, 'pub/fetched.git', { commits: 2 });
  await listInManifest(f.bundles, '/pub/fetched.git');
  const dest = join(f.root, 'fetch-mirror.git');
  await git(['clone', '--quiet', '--mirror', `${f.url}/git/pub/fetched.git`, dest]);
  t.is(await showRefOf(dest), await showRefOf(bare));
  await wt.commit('later work');
  await wt.push('main');
  await wt.run(['tag', 'v2.0']);
  await wt.push('v2.0');
  await git(['fetch', '--quiet', 'origin'], { gitDir: dest });
  t.is(await showRefOf(dest), await showRefOf(bare));
});

test('git push over /git/ is refused with 403 and says why', async (t) => {
  const f = await fx();
  const err = await t.throwsAsync(f.wt.run(['push', `${f.url}/git/pub/a.git`, 'HEAD:refs/heads/pushed']));
  t.regex(err!.message, /403/);
  t.is(await gitText(['for-each-ref', 'refs/heads/pushed'], { gitDir: f.bare }), '');

  const adv = await request(f.url, '/git/pub/a.git/info/refs?service=git-receive-pack');
  t.is(adv.status, 403);
  t.regex(adv.body.toString(), /push to the master/);
  const post = await request(f.url, '/git/pub/a.git/git-receive-pack', {
    method: 'POST',
    body: '0000',
    headers: { 'Content-Type': 'application/x-git-receive-pack-request' },
  });
  t.is(post.status, 403);
});

test('/git/ answers 404 outside the toplevel, for non-bare repositories, non-repositories and dumb HTTP', async (t) => {
  const f = await fx();
  const q = '?service=git-upload-pack';
  const cases: [string, number[]][] = [
    [`/git/sneaky.git/info/refs${q}`, [404]],
    [`/git/work/info/refs${q}`, [404]],
    [`/git/work/.git/info/refs${q}`, [404]],
    [`/git/pub/info/refs${q}`, [404]],
    [`/git/nope.git/info/refs${q}`, [404]],
    [`/git/info/refs${q}`, [404]],
    [`/git/../outside/other.git/info/refs${q}`, [400]],
    [`/git/%2e%2e/outside/other.git/info/refs${q}`, [400]],
    [`/git/pub/a.git/..%2f..%2foutside%2fother.git/info/refs${q}`, [400]],
    ['/git/pub/a.git/info/refs', [404]],
    ['/git/pub/a.git/HEAD', [404]],
    ['/git/pub/a.git/objects/info/packs', [404]],
    ['/git/pub/a.git/config', [404]],
    ['/git', [404]],
    ['/git/', [404]],
  ];
  for (const [target, statuses] of cases) {
    const r = await request(f.url, target);
    t.true(statuses.includes(r.status), `${target} -> ${r.status}`);
  }
  const err = await t.throwsAsync(git(['ls-remote', `${f.url}/git/sneaky.git`]));
  t.regex(err!.message, /not found|404/i);
  t.is((await request(f.url, `/git/pub/a.git/info/refs${q}`)).status, 200);
});

test('a gzip-compressed upload-pack request body is inflated for git http-backend', async (t) => {
  const f = await fx();
  const main = await gitText(['rev-parse', 'refs/heads/main'], { gitDir: f.bare });
  const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, '0') + s;
  const body = gzipSync(Buffer.from(`${pkt(`want ${main}\n`)}0000${pkt('done\n')}`));
  const r = await request(f.url, '/git/pub/a.git/git-upload-pack', {
    method: 'POST',
    body,
    headers: { 'Content-Type': 'application/x-git-upload-pack-request', 'Content-Encoding': 'gzip' },
  });
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'application/x-git-upload-pack-result');
  t.true(r.body.includes('PACK'));

  // the same request sent chunked, without Content-Length (git does this for large negotiations)
  const chunked = await request(f.url, '/git/pub/a.git/git-upload-pack', {
    method: 'POST',
    body,
    headers: {
      'Content-Type': 'application/x-git-upload-pack-request',
      'Content-Encoding': 'gzip',
      'Transfer-Encoding': 'chunked',
    },
  });
  t.is(chunked.status, 200);
  t.true(chunked.body.includes('PACK'));
});

test('git clone --bundle-uri takes the bundle from the served bundle-list, then fetches the rest', async (t) => {
  const f = await fx();
  // a server of its own, so its access log holds only what this clone asked for
  const logs: string[] = [];
  const server = await startServer({ bundles: f.bundles, toplevel: f.toplevel, port: 0, log: (l) => logs.push(l) });
  try {
    const dest = join(f.root, 'clone-bundle-uri');
    await git([
      'clone',
      '--quiet',
      `--bundle-uri=${server.url}/pub/a.git/bundle-list`,
      `${server.url}/git/pub/a.git`,
      dest,
    ]);
    // git may exit before the server has logged the response it finished reading
    await eventually(async () => (logs.some((l) => l.includes(`GET ${f.bundlePath} 200`)) ? true : undefined));
    t.is(logs.filter((l) => l.includes(`GET /pub/a.git/bundle-list 200`)).length, 1, logs.join('\n'));
    t.is(logs.filter((l) => l.includes(`GET ${f.bundlePath} 200 ${f.bundle.length}B`)).length, 1, logs.join('\n'));
    t.is(
      await gitText(['rev-parse', 'HEAD'], { cwd: dest }),
      await gitText(['rev-parse', 'refs/heads/main'], { gitDir: f.bare }),
    );
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------- the page

test('the page lists each repository with its facts and clone commands, escaping the description', async (t) => {
  const f = await fx();
  const r = await request(f.url, '/');
  t.is(r.status, 200);
  t.is(r.headers['content-type'], 'text/html; charset=utf-8');
  const html = r.body.toString();
  t.true(html.includes('/pub/a.git'));
  t.false(html.includes('<script>'));
  t.true(html.includes('Kernel &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; friends'));
  t.true(html.includes('Ann &#60;ann@example.invalid&#62;'));
  t.true(html.includes('2023-11-14 22:13 UTC'));
  t.regex(html, /<dt>bundles<\/dt><dd>1 \([0-9.]+ KiB\)<\/dd>/);
  t.true(html.includes(`git clone --bundle-uri=${f.url}/pub/a.git/bundle-list ${f.url}/git/pub/a.git a`));
  t.true(html.includes(`bundlemirror clone ${f.url}/pub/a.git/index.json a`));
  t.is(r.headers['content-security-policy'], "default-src 'none'; style-src 'unsafe-inline'");
});

// ---------------------------------------------------------------- lifecycle and CLI

test('startServer refuses a missing bundles directory or toplevel with a usage error', async (t) => {
  const { dir, cleanup } = await tempDir();
  try {
    const noBundles = await t.throwsAsync(startServer({ bundles: join(dir, 'missing'), port: 0, log: false }), {
      instanceOf: BundlemirrorError,
    });
    t.is((noBundles as BundlemirrorError).code, 'E_CONFIG');
    t.is((noBundles as BundlemirrorError).exitStatus, 2);
    t.truthy((noBundles as BundlemirrorError).hint);
    await writeManifestFile(join(dir, 'manifest.js.gz'), {});
    const noTop = await t.throwsAsync(
      startServer({ bundles: dir, toplevel: join(dir, 'missing'), port: 0, log: false }),
      { instanceOf: BundlemirrorError },
    );
    t.is((noTop as BundlemirrorError).code, 'E_TOPLEVEL');
    t.is((noTop as BundlemirrorError).exitStatus, 2);

    const program = new Command().exitOverride();
    registerServe(program);
    const viaCli = await t.throwsAsync(
      program.parseAsync(['node', 'bundlemirror', 'serve', '--bundles', join(dir, 'missing'), '--port', '0']),
    );
    t.is((viaCli as BundlemirrorError).code, 'E_CONFIG');
  } finally {
    await cleanup();
  }
});

test('a tree whose manifest is withdrawn serves a page that says nothing is published, and 404 for the manifest', async (t) => {
  const { dir, cleanup } = await tempDir();
  await writeManifestFile(join(dir, 'manifest.js.gz'), {});
  const server = await startServer({ bundles: dir, port: 0, log: false });
  try {
    await rm(join(dir, 'manifest.js.gz'));
    const page = await request(server.url, '/');
    t.is(page.status, 200);
    t.regex(page.body.toString(), /Nothing is published here yet/);
    t.is((await request(server.url, '/manifest.js.gz')).status, 404);
    // without --toplevel there is no smart HTTP
    t.is((await request(server.url, '/git/pub/a.git/info/refs?service=git-upload-pack')).status, 404);
  } finally {
    await server.close();
    await cleanup();
  }
});

/** Starts a GET of a large file and stops reading its body, so the response stays in flight. */
function stalledDownload(url: string, target: string): Promise<{ res: IncomingMessage; body: Promise<Buffer> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: hostname, port, path: target, agent: false }, (res) => {
      res.pause();
      const chunks: Buffer[] = [];
      const body = new Promise<Buffer>((done, fail) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(Buffer.concat(chunks)));
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('aborted')));
      });
      body.catch(() => undefined);
      resolve({ res, body });
    });
    req.on('error', reject);
  });
}

test('close() lets a response in flight finish, refusing new connections meanwhile', async (t) => {
  const { dir, cleanup } = await tempDir();
  // larger than every socket buffer between us, so the server cannot finish while we do not read
  const big = randomBytes(32 << 20);
  await writeFile(join(dir, 'big.bin'), big);
  await writeManifestFile(join(dir, 'manifest.js.gz'), {});
  const server = await startServer({ bundles: dir, port: 0, log: false });
  try {
    const { res, body } = await stalledDownload(server.url, '/big.bin');
    let closed = false;
    const closing = server.close({ graceMs: 60_000 }).then(() => (closed = true));
    await new Promise((r) => setImmediate(r));
    t.false(closed, 'close() waits for the download');
    await t.throwsAsync(request(server.url, '/big.bin'), { message: /ECONNREFUSED/ });
    res.resume();
    t.true((await body).equals(big));
    await closing;
    t.true(closed);
  } finally {
    await server.close();
    await cleanup();
  }
});

test('close() ends a stalled download after the grace period', async (t) => {
  const { dir, cleanup } = await tempDir();
  await writeFile(join(dir, 'big.bin'), randomBytes(32 << 20));
  await writeManifestFile(join(dir, 'manifest.js.gz'), {});
  const server = await startServer({ bundles: dir, port: 0, log: false });
  try {
    const { res, body } = await stalledDownload(server.url, '/big.bin');
    await server.close({ graceMs: 100 });
    // what was buffered before the cut arrives, then the cut shows: an error, never 32 MiB
    res.resume();
    const got = await body.then(
      (b) => b.length,
      () => -1,
    );
    t.true(got < 32 << 20, `received ${got} bytes`);
  } finally {
    await cleanup();
  }
});

test('serve exits 0 on SIGTERM', async (t) => {
  const f = await fx();
  const serveModule = fileURLToPath(new URL('../src/cli/serve.ts', import.meta.url));
  const script = `
    import { Command } from 'commander';
    import { registerServe } from ${JSON.stringify(serveModule)};
    const program = new Command();
    registerServe(program);
    await program.parseAsync(['node', 'bundlemirror', 'serve', '--bundles', ${JSON.stringify(f.bundles)}, '--port', '0']);
  `;
  const child = spawn(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  let stderr = '';
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
    const url = servedUrl(stderr);
    if (url && !stderr.includes('#probed')) {
      stderr += '#probed';
      void request(url, '/manifest.js.gz').then(
        (r) => {
          t.is(r.status, 200);
          child.kill('SIGTERM');
        },
        () => child.kill('SIGTERM'),
      );
    }
  });
  const code = await exit;
  clearTimeout(killer);
  t.is(code, 0, stderr);
  t.regex(stderr, /GET \/manifest\.js\.gz 200/);
});
