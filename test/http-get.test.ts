/**
 * The request under every download (src/transfer/http-get.ts, node's own
 * http), against real servers on 127.0.0.1: redirects and their limit,
 * every timeout phase, credentials across hops, bytes as sent, aborts, and
 * how failure.ts sorts what it throws (codes and retryability, not wording).
 */
import test, { type ExecutionContext } from 'ava';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { BundlemirrorError } from '../src/errors.js';
import { fetchDocument } from '../src/transfer/document.js';
import { failureFromError } from '../src/transfer/failure.js';
import { HttpTimeoutError, MAX_REDIRECTS } from '../src/transfer/http-get.js';
import { DEFAULT_TIMEOUTS, openResponse, type OpenOptions } from '../src/transfer/http.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Running {
  url: string;
  port: number;
  requests: IncomingMessage[];
}

/** Listens on 127.0.0.1; at teardown the open sockets are destroyed first, so a held request cannot keep close() waiting. */
async function listenLocal(t: ExecutionContext, server: TcpServer): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

async function serve(t: ExecutionContext, handler: Handler): Promise<Running> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  const port = await listenLocal(t, server);
  return { url: `http://127.0.0.1:${port}`, port, requests };
}

/** A TCP server that accepts and then says nothing: a request that never gets its headers. */
async function silent(t: ExecutionContext): Promise<string> {
  const server = createTcpServer((s) => s.on('error', () => {}));
  return `http://127.0.0.1:${await listenLocal(t, server)}`;
}

function options(more: Partial<OpenOptions> = {}): OpenOptions {
  return { headers: {}, timeouts: { ...DEFAULT_TIMEOUTS, responseMs: 5_000, idleMs: 5_000 }, ...more };
}

async function readAll(body: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test(`up to ${MAX_REDIRECTS} redirects are followed; one more is a final E_HTTP failure`, async (t) => {
  const s = await serve(t, (req, res) => {
    const n = Number(req.url!.slice(1));
    if (n > 0) res.writeHead(302, { location: `/${n - 1}` }).end();
    else res.end('arrived');
  });
  const ok = await openResponse(`${s.url}/${MAX_REDIRECTS}`, options());
  t.is(ok.status, 200);
  t.is((await readAll(ok.body)).toString(), 'arrived');

  const err = await t.throwsAsync(openResponse(`${s.url}/${MAX_REDIRECTS + 1}`, options()));
  const f = failureFromError('u', err, 'E_DOWNLOAD');
  t.false(f.retryable);
  t.is(f.error.code, 'E_HTTP');
});

test('a redirect outside the rule is refused with E_REDIRECT naming the repository, and never requested', async (t) => {
  const elsewhere = await serve(t, (_req, res) => res.end('not for us'));
  const s = await serve(t, (_req, res) => res.writeHead(301, { location: `${elsewhere.url}/x` }).end());
  const err = await t.throwsAsync(
    openResponse(`${s.url}/a`, options({ redirects: { roots: [`${s.url}/`], repo: '/pub/a.git' } })),
  );
  t.true(err instanceof BundlemirrorError);
  t.is((err as BundlemirrorError).code, 'E_REDIRECT');
  t.is((err as BundlemirrorError).repo, '/pub/a.git');
  t.is(elsewhere.requests.length, 0);
  const f = failureFromError('u', err, 'E_DOWNLOAD');
  t.false(f.retryable);
});

test('credentials in the URL go with same-host redirects and are dropped when a hop leaves the host', async (t) => {
  const other = await serve(t, (_req, res) => res.end('other'));
  const s = await serve(t, (req, res) => {
    if (req.url === '/first') res.writeHead(302, { location: '/second' }).end();
    else if (req.url === '/second') res.writeHead(307, { location: `${other.url}/third` }).end();
    else res.end();
  });
  const withCreds = s.url.replace('http://', 'http://alice:s3cret@');
  const res = await openResponse(
    `${withCreds}/first`,
    options({ redirects: { roots: [`${s.url}/`, `${other.url}/`] } }),
  );
  t.is((await readAll(res.body)).toString(), 'other');
  const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
  t.deepEqual(
    s.requests.map((r) => r.headers.authorization),
    [basic, basic],
  );
  t.is(other.requests[0]!.headers.authorization, undefined);
});

test('a body sent gzip-encoded arrives as the bytes sent, not unpacked; the user agent is ours', async (t) => {
  const packed = gzipSync(Buffer.from('x'.repeat(10_000)));
  const s = await serve(t, (_req, res) => res.writeHead(200, { 'content-encoding': 'gzip' }).end(packed));
  const res = await openResponse(`${s.url}/f`, options({ headers: { 'accept-encoding': 'identity' } }));
  t.true((await readAll(res.body)).equals(packed));
  t.regex(s.requests[0]!.headers['user-agent'] ?? '', /^bundlemirror\//);
  t.is(s.requests[0]!.headers['accept-encoding'], 'identity');
});

test('no response headers within responseMs: a timeout of the response phase, retryable', async (t) => {
  const url = await silent(t);
  const err = await t.throwsAsync(
    openResponse(`${url}/x`, options({ timeouts: { ...DEFAULT_TIMEOUTS, responseMs: 200 } })),
  );
  t.true(err instanceof HttpTimeoutError);
  t.is((err as HttpTimeoutError).event, 'response');
  const f = failureFromError(url, err, 'E_DOWNLOAD');
  t.true(f.retryable);
  t.is(f.error.code, 'E_DOWNLOAD');
  t.is(f.cause, 'stall');
});

test('a document whose body trickles past its whole-exchange deadline fails, retryable, and is retried', async (t) => {
  let calls = 0;
  const s = await serve(t, (_req, res) => {
    calls += 1;
    res.writeHead(200, { 'content-length': '100' });
    res.write('a'); // and never the rest
  });
  const err = await t.throwsAsync(
    fetchDocument(`${s.url}/doc`, {
      maxBytes: 1000,
      timeoutMs: 300,
      retries: 1,
      backoff: { baseMs: 5, capMs: 10, retryAfterCapMs: 10 },
    }),
  );
  t.true(err instanceof BundlemirrorError);
  t.is((err as BundlemirrorError).code, 'E_HTTP');
  t.is(calls, 2);
});

test('a refused connection is retryable trouble of cause "refused"; an unknown scheme is final', async (t) => {
  const s = await serve(t, (_req, res) => res.end());
  const url = s.url;
  // a port that was just free again
  const closed = await new Promise<number>((resolve) => {
    const srv = createTcpServer();
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const err = await t.throwsAsync(openResponse(`http://127.0.0.1:${closed}/x`, options()));
  const f = failureFromError(url, err, 'E_DOWNLOAD');
  t.true(f.retryable);
  t.is(f.cause, 'refused');

  const ftp = await t.throwsAsync(openResponse('ftp://127.0.0.1/x', options()));
  const g = failureFromError('ftp://127.0.0.1/x', ftp, 'E_DOWNLOAD');
  t.false(g.retryable);
  t.is(g.error.code, 'E_HTTP');
});

test('a host name is looked up (localhost) within the lookup phase, without a false timeout', async (t) => {
  const s = await serve(t, (_req, res) => res.end('hello'));
  const res = await openResponse(
    `http://localhost:${s.port}/x`,
    options({
      timeouts: { ...DEFAULT_TIMEOUTS, lookupMs: 5_000, connectMs: 5_000 },
      redirects: { roots: [`http://localhost:${s.port}/`] },
    }),
  ).catch((err: unknown) => {
    // a machine whose localhost is ::1 only: the server listens on 127.0.0.1; that is not this test's concern
    if ((err as { code?: string }).code === 'ECONNREFUSED') return null;
    throw err;
  });
  if (res) t.is((await readAll(res.body)).toString(), 'hello');
  else t.pass();
});

test('an abort before the headers ends the request with the signal reason; after them, it ends the body', async (t) => {
  const url = await silent(t);
  const ac = new AbortController();
  const pending = openResponse(`${url}/x`, options({ signal: ac.signal }));
  setTimeout(() => ac.abort(new Error('stop now')), 50);
  const err = await t.throwsAsync(pending);
  t.is(err?.message, 'stop now');

  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '10' });
    res.write('12345');
  });
  const ac2 = new AbortController();
  const res = await openResponse(`${s.url}/y`, options({ signal: ac2.signal }));
  const reading = readAll(res.body);
  ac2.abort(new Error('enough'));
  const e2 = await t.throwsAsync(reading);
  t.is(e2?.message, 'enough');
});

test('a connection that drops mid-body is retryable trouble of cause "dropped"', async (t) => {
  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' });
    res.write('x'.repeat(100), () => res.socket?.destroy());
  });
  const res = await openResponse(`${s.url}/z`, options());
  const err = await t.throwsAsync(readAll(res.body));
  const f = failureFromError(s.url, err, 'E_DOWNLOAD');
  t.true(f.retryable);
  t.is(f.cause, 'dropped');
});
