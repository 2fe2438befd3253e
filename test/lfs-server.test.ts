import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import { startServer } from '../src/server/server.js';
import { request } from './support/http.js';
import { BIN, servedUrl } from './support/cli.js';
import { lfsObjectPath } from '../src/lfs/oid.js';
import {
  commitLfsFile,
  hasGitLfs,
  lfsUrl,
  lfsWorkTree,
  startLfsOrigin,
  writerWorkTree,
  WRITERS,
} from './support/lfs.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('git lfs push with writer credentials stores every object under its sha256; a wrong token is refused', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const wt = await writerWorkTree(o, 'alice');
  const files = [
    await commitLfsFile(o.client, wt, 'a.bin', 1_500_000),
    await commitLfsFile(o.client, wt, 'b.bin', 2_000_000),
  ];
  const r = await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: wt });
  t.is(r.code, 0);
  for (const body of files) {
    t.true((await readFile(lfsObjectPath(o.bare, sha256(body)))).equals(body));
  }

  const bad = await writerWorkTree(o, 'alice', 'not-the-token');
  const body = await commitLfsFile(o.client, bad, 'c.bin', 100_000);
  const refused = await o.client.run(['push', '--quiet', 'origin', 'main:refs/heads/other'], {
    cwd: bad,
    okCodes: [1, 2, 128],
  });
  t.not(refused.code, 0);
  await t.throwsAsync(readFile(lfsObjectPath(o.bare, sha256(body))));
});

test('git lfs lock, locks and unlock; another writer needs --force; a push with locksverify stops at their lock', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const bobUrl = lfsUrl(o.server, '/pub/assets.git', { name: 'bob', token: WRITERS.bob });
  const alice = await writerWorkTree(o, 'alice');
  await commitLfsFile(o.client, alice, 'scene.bin', 50_000);
  t.is((await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: alice })).code, 0);

  t.is((await o.client.run(['lfs', 'lock', 'scene.bin'], { cwd: alice })).code, 0);
  const listed = JSON.parse(await o.client.text(['lfs', 'locks', '--json'], { cwd: alice })) as {
    path: string;
    owner: { name: string };
  }[];
  t.deepEqual(
    listed.map((l) => [l.path, l.owner.name]),
    [['scene.bin', 'alice']],
  );
  // the lock survives a restart: it is on disk
  t.regex(await readFile(join(o.bare, 'lfs/locks.json'), 'utf8'), /"scene\.bin"/);

  const bob = join(o.dir, 'bob');
  await o.client.run(['-c', `lfs.url=${bobUrl}`, 'clone', '--quiet', o.bare, bob]);
  await o.client.run(['config', 'lfs.url', bobUrl], { cwd: bob });
  await o.client.run(['config', `lfs.${bobUrl}.locksverify`, 'true'], { cwd: bob });
  await o.client.run(['config', 'lfs.locksverify', 'true'], { cwd: bob });
  await commitLfsFile(o.client, bob, 'scene.bin', 60_000);
  const blocked = await o.client.run(['push', 'origin', 'main'], { cwd: bob, okCodes: [1] });
  t.is(blocked.code, 1, 'bob may not push a file alice has locked');
  t.regex(blocked.stdout.toString() + blocked.stderr, /scene\.bin/);

  t.not((await o.client.run(['lfs', 'unlock', 'scene.bin'], { cwd: bob, okCodes: [1, 2] })).code, 0, 'not his lock');
  t.is((await o.client.run(['lfs', 'unlock', '--force', 'scene.bin'], { cwd: bob })).code, 0);
  t.deepEqual(JSON.parse(await o.client.text(['lfs', 'locks', '--json'], { cwd: alice })), []);
  t.is(
    (await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: bob })).code,
    0,
    'no lock, the push goes through',
  );
});

/** Sends the head of a PUT and `sent` bytes of its body, then hangs up. */
function cutUpload(url: string, target: string, auth: string, total: number, sent: number): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(
        `PUT ${target} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: ${auth}\r\nContent-Length: ${total}\r\n\r\n`,
      );
      sock.write(randomBytes(sent), () => setTimeout(() => sock.destroy(), 50));
    });
    sock.on('close', () => resolve());
    sock.on('error', () => resolve());
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name))
      .sort();
  } catch {
    return [];
  }
}

const basic = (name: string, token: string) => `Basic ${Buffer.from(`${name}:${token}`).toString('base64')}`;
const LFS_JSON = { 'Content-Type': 'application/vnd.git-lfs+json', Accept: 'application/vnd.git-lfs+json' };

test('an upload cut mid-body leaves nothing visible, and the retry by git lfs push succeeds', async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const wt = await writerWorkTree(o, 'alice');
  const body = await commitLfsFile(o.client, wt, 'big.bin', 1_000_000);
  const oid = sha256(body);
  await cutUpload(
    o.server.url,
    `/git/pub/assets.git/info/lfs/objects/${oid}?size=${body.length}`,
    basic('alice', WRITERS.alice),
    body.length,
    300_000,
  );
  // the server notices the hang-up and removes its temp file
  for (let i = 0; i < 100 && (await filesUnder(join(o.bare, 'lfs'))).length > 0; i++)
    await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(await filesUnder(join(o.bare, 'lfs')), []);
  // and the temp file of a server killed mid-upload (its pid is gone) is removed by the next upload
  const dead = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    child.on('exit', () => resolve(child.pid!));
  });
  await writeFile(join(o.bare, 'lfs/tmp', `${oid}.${dead}.deadbeef.part`), randomBytes(1000));
  t.is((await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: wt })).code, 0);
  t.true((await readFile(lfsObjectPath(o.bare, oid))).equals(body));
  t.deepEqual(await filesUnder(join(o.bare, 'lfs/tmp')), []);
});

test('hostile LFS requests are refused with the spec status and write nothing outside the store', async (t) => {
  const o = await startLfsOrigin(t);
  const base = '/git/pub/assets.git/info/lfs';
  const auth = basic('alice', WRITERS.alice);
  const before = await filesUnder(o.dir);
  const post = (path: string, body: unknown, headers: Record<string, string> = { Authorization: auth }) =>
    request(o.server.url, `${base}${path}`, {
      method: 'POST',
      headers: { ...LFS_JSON, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const json = (r: { body: Buffer }) => JSON.parse(r.body.toString()) as Record<string, unknown>;

  // anonymous upload: 401 with LFS-Authenticate; a wrong token: 401 again
  const anon = await post('/objects/batch', { operation: 'upload', objects: [{ oid: 'a'.repeat(64), size: 1 }] }, {});
  t.is(anon.status, 401);
  t.regex(String(anon.headers['lfs-authenticate']), /^Basic /);
  t.is(
    (
      await post(
        '/objects/batch',
        { operation: 'upload', objects: [{ oid: 'a'.repeat(64), size: 1 }] },
        { Authorization: basic('alice', 'wrong-token-xx') },
      )
    ).status,
    401,
  );

  // bad oids and sizes: per-object 422 for a download, the whole upload 422 when nothing in it is valid
  const dl = await post(
    '/objects/batch',
    {
      operation: 'download',
      objects: [
        { oid: '../../config', size: 1 },
        { oid: 'A'.repeat(64), size: 1 },
        { oid: 'b'.repeat(64), size: -5 },
      ],
    },
    {},
  );
  t.is(dl.status, 200);
  t.deepEqual(
    (json(dl).objects as { error: { code: number } }[]).map((x) => x.error.code),
    [422, 422, 422],
  );
  t.is((await post('/objects/batch', { operation: 'upload', objects: [{ oid: 'zz', size: 1 }] })).status, 422);
  t.is(
    (await post('/objects/batch', { operation: 'upload', objects: [{ oid: 'c'.repeat(64), size: 2 ** 50 }] })).status,
    422,
  );

  // 100,000 objects in one batch: 413, clearly
  const huge = {
    operation: 'download',
    objects: Array.from({ length: 100_000 }, (_, i) => ({ oid: i.toString(16).padStart(64, '0'), size: 1 })),
  };
  const big = await post('/objects/batch', huge, {});
  t.is(big.status, 413);
  t.regex(String(json(big).message), /\d/);

  // uploads: a traversal in the oid, an oid that is not one, a size that lies, bytes that are not the oid
  const put = (target: string, body: Buffer, headers: Record<string, string> = {}) =>
    request(o.server.url, target, { method: 'PUT', headers: { Authorization: auth, ...headers }, body });
  t.is((await put(`${base}/objects/../../../../escape`, Buffer.from('x'))).status, 400);
  t.is((await put(`${base}/objects/..%2f..%2fconfig`, Buffer.from('x'))).status, 400);
  t.is((await put(`${base}/objects/${'d'.repeat(63)}`, Buffer.from('x'))).status, 422);
  const content = randomBytes(1000);
  t.is((await put(`${base}/objects/${sha256(content)}?size=5000`, content)).status, 422, 'size lies');
  t.is(
    (await put(`${base}/objects/${sha256(content)}?size=1000`, randomBytes(1000))).status,
    422,
    'bytes are not the oid',
  );
  t.is((await put(`${base}/objects/${sha256(content)}?size=1000`, content)).status, 200, 'the honest upload');
  t.is((await request(o.server.url, `${base}/objects/${'e'.repeat(64)}`)).status, 404);

  // lock paths that leave the repository
  for (const path of ['../outside.bin', 'a/../../b.bin', '/etc/passwd', 'a\\..\\b', '']) {
    t.is((await post('/locks', { path })).status, 422, path);
  }
  t.is((await post('/locks/0123/unlock', {})).status, 404);

  const after = await filesUnder(o.dir);
  const added = after.filter((f) => !before.includes(f));
  t.deepEqual(added, [lfsObjectPath(o.bare, sha256(content))]);
});

test('concurrent lock requests for one path: exactly one writer gets it, the others 409 naming the holder', async (t) => {
  const o = await startLfsOrigin(t);
  const post = (who: 'alice' | 'bob') =>
    request(o.server.url, '/git/pub/assets.git/info/lfs/locks', {
      method: 'POST',
      headers: { ...LFS_JSON, Authorization: basic(who, WRITERS[who]) },
      body: JSON.stringify({ path: 'art/hero.psd' }),
    });
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(i % 2 ? 'alice' : 'bob')));
  t.deepEqual(answers.map((a) => a.status).sort(), [201, ...Array<number>(19).fill(409)]);
  const winner = JSON.parse(answers.find((a) => a.status === 201)!.body.toString()) as {
    lock: { id: string; owner: { name: string } };
  };
  for (const a of answers.filter((x) => x.status === 409))
    t.is((JSON.parse(a.body.toString()) as { lock: { id: string } }).lock.id, winner.lock.id);
  // a restart reads the same lock back
  const again = await startServer({
    bundles: o.out,
    toplevel: o.toplevel,
    host: '127.0.0.1',
    port: 0,
    log: false,
    lfsWriters: o.writersFile,
  });
  t.teardown(() => again.close());
  const listed = await request(again.url, '/git/pub/assets.git/info/lfs/locks?path=art/hero.psd', {
    headers: { ...LFS_JSON, Authorization: basic('bob', WRITERS.bob) },
  });
  t.is((JSON.parse(listed.body.toString()) as { locks: { id: string }[] }).locks[0]?.id, winner.lock.id);
});

test('a replica serve redirects uploads and locks to the master with --push-to, else refuses them naming the master', async (t) => {
  const o = await startLfsOrigin(t);
  const replica = await startServer({
    bundles: o.out,
    toplevel: o.toplevel,
    host: '127.0.0.1',
    port: 0,
    log: false,
    pushTo: 'http://master.example:8080',
  });
  t.teardown(() => replica.close());
  const target = '/git/pub/assets.git/info/lfs/objects/batch';
  const body = JSON.stringify({ operation: 'upload', objects: [{ oid: 'a'.repeat(64), size: 1 }] });
  const r = await request(replica.url, target, { method: 'POST', headers: LFS_JSON, body });
  t.is(r.status, 307);
  t.is(r.headers.location, `http://master.example:8080${target}`);
  t.is((await request(replica.url, '/git/pub/assets.git/info/lfs/locks', { headers: LFS_JSON })).status, 307);
  // downloads stay here
  const dl = await request(replica.url, target, {
    method: 'POST',
    headers: LFS_JSON,
    body: body.replace('upload', 'download'),
  });
  t.is(dl.status, 200);

  const plain = await startServer({ bundles: o.out, toplevel: o.toplevel, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => plain.close());
  await git(['config', 'bundlemirror.master', 'http://master.example:8080/git/pub/assets.git'], { gitDir: o.bare });
  const refused = await request(plain.url, target, { method: 'POST', headers: LFS_JSON, body });
  t.is(refused.status, 403);
  t.regex(refused.body.toString(), /master\.example:8080/);
});

test("git-lfs follows a replica serve's 307: uploads and locks made through the replica land at the master", async (t) => {
  if (!(await hasGitLfs())) return t.pass('git-lfs is not installed; skipped');
  const o = await startLfsOrigin(t);
  const replica = await startServer({
    bundles: o.out,
    toplevel: o.toplevel,
    host: '127.0.0.1',
    port: 0,
    log: false,
    pushTo: o.server.url,
  });
  t.teardown(() => replica.close());
  // the replica never sees a token: git-lfs asks its credential helper for the master's URL after the redirect
  const wt = await lfsWorkTree(o.client, o.dir, o.bare, lfsUrl(replica, '/pub/assets.git'));
  const store = join(o.dir, 'credentials');
  await writeFile(store, `http://alice:${WRITERS.alice}@127.0.0.1:${o.server.port}\n`, { mode: 0o600 });
  await o.client.run(['config', 'credential.helper', `store --file=${store}`], { cwd: wt });
  const body = await commitLfsFile(o.client, wt, 'via-replica.bin', 300_000);
  const pushed = await o.client.run(['push', '--quiet', 'origin', 'main'], { cwd: wt, okCodes: [1] });
  t.is(pushed.code, 0, pushed.stderr);
  t.true((await readFile(lfsObjectPath(o.bare, sha256(body)))).equals(body));
  const locked = await o.client.run(['lfs', 'lock', 'via-replica.bin'], { cwd: wt, okCodes: [2] });
  t.is(locked.code, 0, locked.stderr);
  t.regex(await readFile(join(o.bare, 'lfs/locks.json'), 'utf8'), /via-replica\.bin/);
});

test('serve --lfs-writers re-reads the writers file on SIGHUP; a broken file keeps the previous writers', async (t) => {
  const o = await startLfsOrigin(t);
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--bundles', o.out, '--toplevel', o.toplevel, '--port', '0', '--lfs-writers', o.writersFile],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 300 && !re.test(stderr); i++) await new Promise((r) => setTimeout(r, 50));
    return re.exec(stderr);
  };
  let url: string | undefined;
  for (let i = 0; i < 300 && !(url = servedUrl(stderr)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!url) throw new Error(`serve named no URL: ${stderr}`);
  const batch = (who: string, token: string) =>
    request(url, '/git/pub/assets.git/info/lfs/objects/batch', {
      method: 'POST',
      headers: { ...LFS_JSON, Authorization: basic(who, token) },
      body: JSON.stringify({ operation: 'upload', objects: [{ oid: 'a'.repeat(64), size: 1 }] }),
    });
  t.is((await batch('carol', 'carol-token-000111')).status, 401);

  await writeFile(o.writersFile, `alice ${WRITERS.alice}\ncarol carol-token-000111\n`);
  child.kill('SIGHUP');
  await waitFor(/SIGHUP: 2 LFS writer/);
  t.is((await batch('carol', 'carol-token-000111')).status, 200);
  t.is((await batch('bob', WRITERS.bob)).status, 401, 'bob was removed');

  await writeFile(o.writersFile, 'carol\n');
  child.kill('SIGHUP');
  await waitFor(/SIGHUP: kept the previous LFS writers/);
  t.is((await batch('carol', 'carol-token-000111')).status, 200);
});
