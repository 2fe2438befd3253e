/**
 * The download door on `file:` URLs: a published tree on a mounted
 * filesystem is read with the same resume, conditional-fetch and
 * verification rules as over HTTP, and trusted no more than a server.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BundlemirrorError, type ErrorCode } from '../src/errors.js';
import { fetchDocument } from '../src/transfer/document.js';
import { failureFromError } from '../src/transfer/failure.js';
import { downloadFile } from '../src/transfer/download.js';
import { tempDir } from './support/repos.js';

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

interface Tree {
  dir: string;
  /** The published tree's root, as a file: URL ending in `/`. */
  root: string;
  url(rel: string): string;
  partialDir: string;
  dest: string;
}

async function tree(t: ExecutionContext): Promise<Tree> {
  const { dir, cleanup } = await tempDir('bm-file-');
  t.teardown(cleanup);
  const top = join(dir, 'published');
  await mkdir(join(top, 'pub', 'a.git'), { recursive: true });
  const root = pathToFileURL(top + '/').href;
  return {
    dir,
    root,
    url: (rel) => new URL(rel, root).href,
    partialDir: join(dir, 'replica', '.bundlemirror', 'partial'),
    dest: join(dir, 'replica', 'cache', 'x.bundle'),
  };
}

async function rejection(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode): Promise<BundlemirrorError> {
  const err = await t.throwsAsync(p);
  t.true(err instanceof BundlemirrorError, `expected a BundlemirrorError, got ${String(err)}`);
  t.is((err as BundlemirrorError).code, code, (err as Error).message);
  return err as BundlemirrorError;
}

const QUICK = { retries: 1, backoff: { baseMs: 5, capMs: 20 } };

test('a bundle is copied from a file: tree, verified, and a partial is resumed from its last byte', async (t) => {
  const e = await tree(t);
  const content = randomBytes(3 << 20);
  const sha = sha256(content);
  await writeFile(join(e.dir, 'published', 'pub', 'a.git', `${sha}.bundle`), content);
  const half = 1 << 20;
  await mkdir(e.partialDir, { recursive: true });
  await writeFile(join(e.partialDir, `${sha}.part`), content.subarray(0, half));
  const r = await downloadFile({
    url: e.url(`pub/a.git/${sha}.bundle`),
    redirects: { roots: [e.root], repo: '/pub/a.git' },
    dest: e.dest,
    expectedSize: content.length,
    sha256: sha,
    partialDir: e.partialDir,
  });
  t.is(sha256(await readFile(e.dest)), sha);
  t.like(r, { attempts: 1, bytesResumed: half, bytesDownloaded: content.length - half, restarts: 0 });
});

test('a file: bundle whose bytes do not match the index is refused and nothing lands', async (t) => {
  const e = await tree(t);
  const content = randomBytes(100_000);
  const forged = Buffer.from(content);
  forged[5] = forged[5]! ^ 1;
  const sha = sha256(content);
  await writeFile(join(e.dir, 'published', 'pub', 'a.git', `${sha}.bundle`), forged);
  await rejection(
    t,
    downloadFile({
      url: e.url(`pub/a.git/${sha}.bundle`),
      redirects: { roots: [e.root] },
      dest: e.dest,
      expectedSize: content.length,
      sha256: sha,
      partialDir: e.partialDir,
    }),
    'E_BUNDLE_VERIFY',
  );
  await t.throwsAsync(stat(e.dest), { code: 'ENOENT' });
});

test('a file: document is read, and asked again with its ETag it is unchanged until replaced', async (t) => {
  const e = await tree(t);
  const file = join(e.dir, 'published', 'pub', 'a.git', 'index.json');
  await writeFile(file, '{"v":1}');
  const first = await fetchDocument(e.url('pub/a.git/index.json'), { maxBytes: 1000, redirects: { roots: [e.root] } });
  t.is(first.status, 'ok');
  if (first.status !== 'ok') return;
  t.is(first.body.toString(), '{"v":1}');
  t.truthy(first.etag);
  const again = await fetchDocument(e.url('pub/a.git/index.json'), {
    maxBytes: 1000,
    etag: first.etag,
    redirects: { roots: [e.root] },
  });
  t.is(again.status, 'unchanged');
  // a publish replaces the file by rename: another file, another tag
  await writeFile(file + '.tmp', '{"v":2}');
  await rename(file + '.tmp', file);
  const changed = await fetchDocument(e.url('pub/a.git/index.json'), {
    maxBytes: 1000,
    etag: first.etag,
    redirects: { roots: [e.root] },
  });
  t.is(changed.status === 'ok' ? changed.body.toString() : changed.status, '{"v":2}');
});

test('a missing file: document is a 404 (E_NOT_FOUND); with the whole tree missing (not mounted) the error names the tree', async (t) => {
  const e = await tree(t);
  const doc = (rel: string) => fetchDocument(e.url(rel), { maxBytes: 1000, redirects: { roots: [e.root] }, ...QUICK });
  const missing = await rejection(t, doc('pub/nope.git/index.json'), 'E_NOT_FOUND');
  t.truthy(missing.hint);
  await rename(join(e.dir, 'published'), join(e.dir, 'unmounted'));
  const gone = await rejection(t, doc('pub/a.git/index.json'), 'E_NOT_FOUND');
  t.true(gone.message.includes(join(e.dir, 'published')), gone.message);
  t.not(gone.hint, missing.hint, 'what to do differs: mount the tree, not wait for a publish');
});

test('a loop of symlinks in a file: tree is E_SYMLINK naming the repository, not a symlink out of the tree', async (t) => {
  const e = await tree(t);
  const repo = join(e.dir, 'published', 'pub', 'a.git');
  await symlink(join(repo, 'loop-b'), join(repo, 'index.json'));
  await symlink(join(repo, 'index.json'), join(repo, 'loop-b'));
  const err = await rejection(
    t,
    fetchDocument(e.url('pub/a.git/index.json'), {
      maxBytes: 1000,
      redirects: { roots: [e.root], repo: '/pub/a.git' },
      ...QUICK,
    }),
    'E_SYMLINK',
  );
  t.is(err.repo, '/pub/a.git');
  t.false(err.message.includes('loop-b'), 'where a link leads is not followed into the message');
});

test('file: paths outside the tree are refused: ../, another absolute path, a symlink out, a FIFO', async (t) => {
  const e = await tree(t);
  const top = join(e.dir, 'published');
  const secret = join(e.dir, 'secret');
  await writeFile(secret, 'not for the replica');
  const roots = { roots: [e.root], repo: '/pub/a.git' };
  const doc = (url: string) => fetchDocument(url, { maxBytes: 1000, redirects: roots, ...QUICK });

  const up = await rejection(t, doc(e.url('pub/a.git/../../../secret')), 'E_REDIRECT');
  t.is(up.repo, '/pub/a.git');
  await rejection(t, doc(pathToFileURL(secret).href), 'E_REDIRECT');

  await symlink(secret, join(top, 'pub', 'a.git', 'index.json'));
  const out = await rejection(t, doc(e.url('pub/a.git/index.json')), 'E_SYMLINK');
  t.is(out.repo, '/pub/a.git');
  t.false(`${out.message} ${out.hint}`.includes(secret), 'the path outside the tree is not named');

  // a directory of the tree that is a symlink out of it
  await symlink(e.dir, join(top, 'pub', 'b.git'));
  await rejection(t, doc(e.url('pub/b.git/secret')), 'E_SYMLINK');

  // a symlink that stays inside the tree is only a name
  await writeFile(join(top, 'pub', 'real.json'), '{}');
  await symlink(join(top, 'pub', 'real.json'), join(top, 'pub', 'alias.json'));
  const inside = await doc(e.url('pub/alias.json'));
  t.is(inside.status === 'ok' ? inside.body.toString() : inside.status, '{}');

  // a FIFO would block a plain open; it is not a regular file, so it is not there
  execFileSync('mkfifo', [join(top, 'pub', 'fifo.json')]);
  await rejection(t, doc(e.url('pub/fifo.json')), 'E_NOT_FOUND');

  // a bundle symlinked to a file outside: refused before a byte is read
  const content = await readFile(secret);
  const sha = sha256(content);
  await symlink(secret, join(top, 'pub', 'a.git', `${sha}.bundle`));
  await rejection(
    t,
    downloadFile({
      url: e.url(`pub/a.git/${sha}.bundle`),
      redirects: roots,
      dest: e.dest,
      expectedSize: content.length,
      sha256: sha,
      partialDir: e.partialDir,
      ...QUICK,
    }),
    'E_SYMLINK',
  );
  await t.throwsAsync(stat(e.dest), { code: 'ENOENT' });
});

test('without a rule, a file: URL may read its own directory only', async (t) => {
  const e = await tree(t);
  await writeFile(join(e.dir, 'published', 'top.json'), '{}');
  await symlink(join(e.dir, 'published', 'top.json'), join(e.dir, 'published', 'pub', 'a.git', 'up.json'));
  await rejection(t, fetchDocument(e.url('pub/a.git/up.json'), { maxBytes: 100, ...QUICK }), 'E_SYMLINK');
  const own = await fetchDocument(e.url('top.json'), { maxBytes: 100, ...QUICK });
  t.is(own.status, 'ok');
});

test('a file: tree this user may not read fails at once, with a hint about permissions', (t) => {
  // as root the permission check cannot be provoked on disk: the error open() gives a non-root user
  const err = Object.assign(new Error("EACCES: permission denied, open '/mnt/pub/manifest.js.gz'"), { code: 'EACCES' });
  const f = failureFromError('file:///mnt/pub/manifest.js.gz', err, 'E_DOWNLOAD');
  t.false(f.retryable);
  t.is(f.error.code, 'E_DOWNLOAD');
  t.truthy(f.error.hint);
});
