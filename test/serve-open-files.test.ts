/**
 * `serve` keeps content-addressed files open between requests. What a
 * user must never notice: a bundle gc deleted is gone (404, and its disk
 * space is not held), a document or bundle replaced under its name is
 * served from the new file, a symlink swapped in after a first request is
 * refused as on the first, and the open files stay bounded.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readlink, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { writeManifestFile } from '../src/manifest/manifest.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { OpenFileCache, openRegular } from '../src/server/open-files.js';
import { prng, request } from './support/http.js';
import { tempDir } from './support/repos.js';
import { eventually } from './support/daemon.js';

interface Tree {
  root: string;
  bundles: string;
  repoDir: string;
  outside: string;
  server: RunningServer;
}

function seeded(seed: number, size: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes `bytes` under its content address in the repository directory; returns the request path. */
async function addBundle(t: Tree, bytes: Buffer): Promise<string> {
  const name = `${sha256(bytes)}.bundle`;
  await writeFile(join(t.repoDir, name), bytes);
  return `/pub/a.git/${name}`;
}

async function tree(t: import('ava').ExecutionContext): Promise<Tree> {
  const { dir, cleanup } = await tempDir('bm-open-files-');
  const root = await realpath(dir);
  const bundles = join(root, 'bundles');
  const repoDir = join(bundles, 'pub', 'a.git');
  const outside = join(root, 'outside');
  await mkdir(repoDir, { recursive: true });
  await mkdir(outside);
  await writeManifestFile(join(bundles, 'manifest.js.gz'), { '/pub/a.git': { modified: 1_700_000_000 } });
  const server = await startServer({ bundles, host: '127.0.0.1', port: 0, log: false });
  t.teardown(async () => {
    await server.close({ graceMs: 1000 });
    await cleanup();
  });
  return { root, bundles, repoDir, outside, server };
}

/** Descriptors of this process open on `path` (also once it is deleted). */
async function openDescriptors(path: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target === path || target === `${path} (deleted)`) n += 1;
  }
  return n;
}

test('a bundle gc deleted after it was served is 404, and its file is no longer held open', async (t) => {
  const f = await tree(t);
  const bytes = seeded(1, 100_000);
  const path = await addBundle(f, bytes);
  const file = join(f.repoDir, path.split('/').pop()!);
  t.is((await request(f.server.url, path)).status, 200);
  t.is(await openDescriptors(file), 1, 'kept open between requests');

  await rm(file);
  for (const method of ['GET', 'HEAD']) {
    const r = await request(f.server.url, path, { method });
    t.is(r.status, 404, method);
  }
  await eventually(async () => ((await openDescriptors(file)) === 0 ? true : undefined), { timeoutMs: 10_000 });
  t.pass();
});

test('a bundle replaced under its name by another file is served from the new file', async (t) => {
  const f = await tree(t);
  const first = seeded(2, 50_000);
  const path = await addBundle(f, first);
  const file = join(f.repoDir, path.split('/').pop()!);
  t.true((await request(f.server.url, path)).body.equals(first));

  // the same size, so only the inode tells the files apart
  const second = seeded(3, 50_000);
  await writeFile(`${file}.tmp`, second);
  await rename(`${file}.tmp`, file);
  const r = await request(f.server.url, path);
  t.is(r.status, 200);
  t.true(r.body.equals(second));
  const ranged = await request(f.server.url, path, { headers: { Range: 'bytes=100-199' } });
  t.is(ranged.status, 206);
  t.true(ranged.body.equals(second.subarray(100, 200)));
});

test('a document replaced by rename is served fresh, with a new ETag', async (t) => {
  const f = await tree(t);
  const index = join(f.repoDir, 'index.json');
  await writeFile(index, '{"version":1,"first":true}\n');
  const a = await request(f.server.url, '/pub/a.git/index.json');
  t.is(a.body.toString(), '{"version":1,"first":true}\n');

  await writeFile(`${index}.tmp`, '{"version":1,"first":false}\n');
  await rename(`${index}.tmp`, index);
  const b = await request(f.server.url, '/pub/a.git/index.json', {
    headers: { 'If-None-Match': a.headers.etag! },
  });
  t.is(b.status, 200);
  t.is(b.body.toString(), '{"version":1,"first":false}\n');
  t.not(b.headers.etag, a.headers.etag);
});

test('a symlink swapped in for a bundle after its first request is refused as on a first request', async (t) => {
  const f = await tree(t);
  const bytes = seeded(4, 30_000);
  const path = await addBundle(f, bytes);
  const name = path.split('/').pop()!;
  const file = join(f.repoDir, name);
  t.is((await request(f.server.url, path)).status, 200);

  // the bundle becomes a symlink to a file outside the tree
  const secret = Buffer.concat([Buffer.from('SECRET-OUTSIDE'), bytes.subarray(14)]);
  await writeFile(join(f.outside, 'secret'), secret);
  await symlink(join(f.outside, 'secret'), `${file}.link`);
  await rename(`${file}.link`, file);
  for (const method of ['GET', 'HEAD']) {
    const r = await request(f.server.url, path, { method });
    t.is(r.status, 404, method);
    t.false(r.body.toString('latin1').includes('SECRET'));
  }
  const ranged = await request(f.server.url, path, { headers: { Range: 'bytes=0-99' } });
  t.is(ranged.status, 404);
});

test('a repository directory swapped for a symlink out of the tree is refused, even with the same bytes there', async (t) => {
  const f = await tree(t);
  const bytes = seeded(5, 30_000);
  const path = await addBundle(f, bytes);
  t.is((await request(f.server.url, path)).status, 200);

  const elsewhere = join(f.outside, 'a.git');
  await mkdir(elsewhere);
  await writeFile(join(elsewhere, path.split('/').pop()!), bytes);
  await rename(f.repoDir, join(f.root, 'moved-away'));
  await symlink(elsewhere, f.repoDir);
  t.is((await request(f.server.url, path)).status, 404);
});

test('concurrent ranges of one bundle share one open file, and each gets exactly its bytes', async (t) => {
  const f = await tree(t);
  const bytes = seeded(6, 400_000);
  const path = await addBundle(f, bytes);
  const file = join(f.repoDir, path.split('/').pop()!);
  const whole = await request(f.server.url, path);
  t.true(whole.body.equals(bytes));

  const rnd = prng(7);
  const ranges = Array.from({ length: 64 }, () => {
    const start = Math.floor(rnd() * bytes.length);
    const end = Math.min(bytes.length - 1, start + Math.floor(rnd() * 50_000));
    return [start, end] as const;
  });
  const answers = await Promise.all(
    ranges.map(([s, e]) =>
      request(f.server.url, path, { headers: { Range: `bytes=${s}-${e}`, 'If-Range': `"${sha256(bytes)}"` } }),
    ),
  );
  answers.forEach((r, i) => {
    const [s, e] = ranges[i]!;
    t.is(r.status, 206);
    t.is(r.headers['content-range'], `bytes ${s}-${e}/${bytes.length}`);
    t.true(r.body.equals(bytes.subarray(s, e + 1)), `range ${s}-${e}`);
  });
  t.is(await openDescriptors(file), 1);

  // the other answers a resuming client depends on, from the kept file
  const head = await request(f.server.url, path, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.body.length, 0);
  t.is(head.headers['content-length'], String(bytes.length));
  const beyond = await request(f.server.url, path, { headers: { Range: `bytes=${bytes.length}-` } });
  t.is(beyond.status, 416);
  t.is(beyond.headers['content-range'], `bytes */${bytes.length}`);
  const stale = await request(f.server.url, path, { headers: { Range: 'bytes=5-9', 'If-Range': '"other"' } });
  t.is(stale.status, 200);
  t.true(stale.body.equals(bytes));
});

test.serial(
  'the cache keeps at most its bound open, closes a file evicted while read once it is released, and closes all on close()',
  async (t) => {
    const { dir: made, cleanup } = await tempDir('bm-open-files-');
    t.teardown(cleanup);
    const dir = await realpath(made);
    const files = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const file = join(dir, `f${i}`);
        await writeFile(file, `file ${i}\n`);
        return file;
      }),
    );
    const open = async () => (await Promise.all(files.map(openDescriptors))).reduce((a, b) => a + b, 0);
    const cache = new OpenFileCache({ maxOpen: 2, idleMs: 60_000 });
    t.teardown(() => cache.close());

    const first = await openRegular(files[0]!);
    const held = cache.keep(files[0]!, first!.fd, first!.st); // still being read while the others push it out
    for (const file of files.slice(1)) {
      const o = await openRegular(file);
      cache.keep(file, o!.fd, o!.st).release();
    }
    t.is(cache.openCount, 2);
    await eventually(async () => ((await open()) === 3 ? true : undefined), { timeoutMs: 10_000 });
    t.is(await openDescriptors(files[0]!), 1, 'evicted but still read: open');
    t.is(await cache.reuse(files[0]!), null, 'no longer kept');
    held.release();
    await eventually(async () => ((await openDescriptors(files[0]!)) === 0 ? true : undefined), { timeoutMs: 10_000 });

    const again = await cache.reuse(files[3]!);
    t.truthy(again);
    again!.release();
    cache.close();
    t.is(cache.openCount, 0);
    await eventually(async () => ((await open()) === 0 ? true : undefined), { timeoutMs: 10_000 });
    t.pass();
  },
);

test.serial('a kept file nobody asks for is closed after the idle time', async (t) => {
  const { dir: made, cleanup } = await tempDir('bm-open-files-');
  t.teardown(cleanup);
  const dir = await realpath(made);
  const file = join(dir, 'f');
  await writeFile(file, 'x\n');
  const cache = new OpenFileCache({ maxOpen: 4, idleMs: 200 });
  t.teardown(() => cache.close());
  const o = await openRegular(file);
  cache.keep(file, o!.fd, o!.st).release();
  t.is(cache.openCount, 1);
  await eventually(async () => (cache.openCount === 0 && (await openDescriptors(file)) === 0 ? true : undefined), {
    timeoutMs: 10_000,
  });
  t.pass();
});

test('ranges of many sizes at once, some abandoned mid-body, each completed answer holds exactly its bytes', async (t) => {
  const f = await tree(t);
  const a = seeded(8, 3 << 20);
  const b = seeded(9, (3 << 20) + 12_345);
  const paths = [await addBundle(f, a), await addBundle(f, b)];
  const rnd = prng(10);
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  const one = (i: number) => {
    const which = i % 2;
    const bytes = which === 0 ? a : b;
    const start = Math.floor(rnd() * bytes.length);
    const end = Math.min(bytes.length - 1, start + Math.floor(rnd() * (2.5 * 2 ** 20)));
    const abandon = i % 9 === 4;
    return new Promise<{ ok: boolean; abandoned: boolean }>((resolve) => {
      const req = httpRequest(
        `${f.server.url}${paths[which]}`,
        { agent: abandon ? false : agent, headers: { Range: `bytes=${start}-${end}` } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            if (abandon) req.destroy();
          });
          res.on('end', () =>
            resolve({
              ok: res.statusCode === 206 && Buffer.concat(chunks).equals(bytes.subarray(start, end + 1)),
              abandoned: false,
            }),
          );
          res.on('error', () => resolve({ ok: abandon, abandoned: true }));
          res.on('close', () => resolve({ ok: abandon, abandoned: true }));
        },
      );
      req.on('error', () => resolve({ ok: abandon, abandoned: true }));
      req.end();
    });
  };
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => one(round * 40 + i)));
    results.forEach((r, i) => t.true(r.ok, `round ${round} request ${i}${r.abandoned ? ' (abandoned)' : ''}`));
  }
  // the server is still whole afterwards
  t.true((await request(f.server.url, paths[1]!)).body.equals(b));
});

test('a slow reader gets exactly its bytes while many quick ranges are answered meanwhile', async (t) => {
  const f = await tree(t);
  const big = seeded(11, 24 << 20);
  const small = seeded(12, 1 << 20);
  const bigPath = await addBundle(f, big);
  const smallPath = await addBundle(f, small);
  // slow readers: nothing read for a while, so their answers wait in the server, not in the kernel alone
  const slow = Array.from(
    { length: 4 },
    () =>
      new Promise<boolean>((resolve) => {
        const req = httpRequest(`${f.server.url}${bigPath}`, { agent: false }, (res) => {
          res.pause();
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(res.statusCode === 200 && Buffer.concat(chunks).equals(big)));
          res.on('error', () => resolve(false));
          setTimeout(() => res.resume(), 400);
        });
        req.on('error', () => resolve(false));
        req.end();
      }),
  );
  const rnd = prng(13);
  const quick = async () => {
    for (let i = 0; i < 15; i++) {
      const start = Math.floor(rnd() * (small.length - 1));
      const end = Math.min(small.length - 1, start + Math.floor(rnd() * (300 << 10)));
      const r = await request(f.server.url, smallPath, { headers: { Range: `bytes=${start}-${end}` } });
      if (r.status !== 206 || !r.body.equals(small.subarray(start, end + 1))) return false;
    }
    return true;
  };
  const quickOk = await Promise.all(Array.from({ length: 8 }, quick));
  t.deepEqual(quickOk, Array(8).fill(true));
  t.deepEqual(await Promise.all(slow), Array(4).fill(true));
});
