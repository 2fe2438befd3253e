/**
 * A body the server cannot send whole (a failed read, a file shorter than
 * announced) ends with the connection closed before Content-Length bytes,
 * so a resuming client notices, and with a line in the server's log naming
 * the file and what happened; a client that leaves is not logged as a
 * server problem.
 */
import test, { type ExecutionContext } from 'ava';
import { closeSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { CACHE_IMMUTABLE, sendEntity } from '../src/server/send.js';
import { request } from './support/http.js';
import { tempDir } from './support/repos.js';

/** Serves one entity on 127.0.0.1 with sendEntity; returns what was logged once the handler has returned. */
async function serveOnce(t: ExecutionContext, fd: number, size: number) {
  const lines: string[] = [];
  let handled: Promise<void> = Promise.resolve();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    handled = sendEntity(
      req,
      res,
      {
        size,
        etag: '"e"',
        lastModified: new Date(0),
        contentType: 'application/octet-stream',
        cacheControl: CACHE_IMMUTABLE,
        body: { fd },
      },
      { log: (l) => lines.push(l), what: '/pub/a.git/x.bundle' },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const got = await request(url, '/pub/a.git/x.bundle').then(
    (r) => r,
    (err: Error) => err,
  );
  await handled;
  return { got, lines };
}

async function dir(t: ExecutionContext): Promise<string> {
  const { dir, cleanup } = await tempDir('bm-send-');
  t.teardown(cleanup);
  return dir;
}

test('a file shorter than announced: the connection closes before Content-Length bytes and the log names the file and the byte', async (t) => {
  const d = await dir(t);
  await writeFile(join(d, 'x.bundle'), Buffer.alloc(100_000, 7));
  const fd = openSync(join(d, 'x.bundle'), 'r');
  t.teardown(() => closeSync(fd));
  const { got, lines } = await serveOnce(t, fd, 300_000);
  t.true(got instanceof Error || got.body.length < 300_000, 'the client does not get a whole-looking body');
  t.is(lines.length, 1);
  t.true(lines[0]!.startsWith('/pub/a.git/x.bundle: '), lines[0]);
  t.true(lines[0]!.includes('100000 of 300000'), lines[0]);
});

test('a read that fails mid-body is logged with the file and the error code', async (t) => {
  const d = await dir(t);
  // reading a directory fails with EISDIR: a stand-in for a disk that fails a read
  const fd = openSync(d, 'r');
  t.teardown(() => closeSync(fd));
  const { got, lines } = await serveOnce(t, fd, 1000);
  t.true(got instanceof Error || got.body.length < 1000);
  t.is(lines.length, 1);
  t.true(lines[0]!.startsWith('/pub/a.git/x.bundle: '), lines[0]);
  t.true(lines[0]!.includes('EISDIR'), lines[0]);
});

test('a whole body logs nothing', async (t) => {
  const d = await dir(t);
  await writeFile(join(d, 'x.bundle'), Buffer.alloc(5000, 1));
  const fd = openSync(join(d, 'x.bundle'), 'r');
  t.teardown(() => closeSync(fd));
  const { got, lines } = await serveOnce(t, fd, 5000);
  t.false(got instanceof Error);
  t.is((got as { body: Buffer }).body.length, 5000);
  t.deepEqual(lines, []);
});
