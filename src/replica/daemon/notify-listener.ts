/**
 * How a replica daemon hears that the origin changed, and where it is
 * watched:
 *
 * - HTTP on `[bundlemirror] listen`: `POST /notify` with
 *   `{"repos": ["/pub/a.git"]}` and `Authorization: Bearer <token>` (the
 *   contents of `[bundlemirror] notify_token_file`, compared in constant
 *   time); `GET /metrics` (Prometheus text, no token: bind it to loopback
 *   or a monitoring network).
 * - grokmirror's UNIX socket on `[pull] socket`: repository paths, one per
 *   line, until a blank line or end of input, as grok-pull's listener reads
 *   them. No token: the socket's file permissions decide who may write.
 *
 * Both accept well-formed manifest paths only, at most MAX_REPOS per
 * message and MAX_BODY_BYTES per request or connection. HTTP clients are
 * rate-limited per address, failed authentications more tightly, and
 * refusals are logged once per window plus a counted summary
 * (client-limits.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmod, chown, lstat, readFile, rm, stat } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { z } from 'zod';
import { BundlemirrorError } from '../../errors.js';
import { repoPathProblem } from '../../git/refname.js';
import { PROMETHEUS_CONTENT_TYPE } from '../../metrics/prometheus.js';
import type { ListenAddress } from './daemon-config.js';
import type { PullLog } from '../log.js';
import type { NotifyResult } from './metrics-daemon.js';
import { ClientLimits, WarnSummary, type ClientLimitOptions } from './client-limits.js';

export const NOTIFY_PATH = '/notify';
export const METRICS_PATH = '/metrics';
export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_REPOS = 1000;
/** A notifier that has not finished its request by then is cut off. */
const REQUEST_TIMEOUT_MS = 15_000;

export interface NotifyOutcome {
  /** Queued for a pull now. */
  accepted: string[];
  /** Left alone, with the reason (not selected by include/exclude, pulled on a schedule). */
  ignored: { path: string; reason: string }[];
}

export interface ListenerOptions {
  listen: ListenAddress | null;
  socket: string | null;
  /** `[pull] socket_mode` and `socket_group`: who may write the socket, which takes no token. */
  socketMode?: number;
  socketGroup?: number | null;
  /** The shared secret, read per request so a reload can replace it; null: HTTP notifications are refused. */
  token: () => Buffer | null;
  notify: (paths: string[], source: string) => NotifyOutcome;
  metrics: () => Promise<string>;
  count: (result: NotifyResult) => void;
  log: PullLog;
  /** Per-client request and failed-authentication limits, and the WARN summary window (defaults in client-limits.ts). */
  limits?: ClientLimitOptions | undefined;
}

export interface Listeners {
  /** `http://host:port` of the HTTP listener, or null. */
  url: string | null;
  socket: string | null;
  close(): Promise<void>;
}

const NotifyBody = z.object({ repos: z.array(z.string()).min(1).max(MAX_REPOS) });

export async function startListeners(opts: ListenerOptions): Promise<Listeners> {
  let http: { server: HttpServer; url: string } | null = null;
  let unix: { close(): Promise<void> } | null = null;
  try {
    if (opts.listen) http = await listenHttp(opts.listen, opts);
    if (opts.socket) unix = await listenSocket(opts.socket, opts);
  } catch (err) {
    if (http) await closeHttp(http.server);
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    url: http?.url ?? null,
    socket: unix ? opts.socket : null,
    close: () =>
      (closing ??= (async () => {
        if (http) await closeHttp(http.server);
        if (unix) await unix.close();
      })()),
  };
}

/** The shared token in `[bundlemirror] notify_token_file`: one line, trimmed. Throws E_CONFIG; `warn` hears about weak setups. */
export async function readNotifyToken(file: string, warn: (message: string) => void): Promise<Buffer> {
  const fail = (why: string): never => {
    throw new BundlemirrorError('E_CONFIG', `[bundlemirror] notify_token_file ${file} ${why}`, {
      hint: `create it with: head -c 32 /dev/urandom | base64 > ${file}; chmod 600 ${file} (the same token goes to publish --notify-token-file)`,
    });
  };
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) =>
    fail(`cannot be read (${err.code ?? err.message})`),
  );
  const token = text.trim();
  if (token === '') fail('is empty');
  if (/\s/.test(token)) fail('must hold one token on one line, without spaces');
  if (token.length < 16)
    warn(`[bundlemirror] notify_token_file ${file}: the token is short; use at least 16 random characters`);
  if (((await stat(file)).mode & 0o004) !== 0)
    warn(`[bundlemirror] notify_token_file ${file} is readable by every user; chmod 600 it`);
  return Buffer.from(token, 'utf8');
}

/** Constant-time comparison of a presented bearer token with the configured one. */
export function bearerMatches(header: string | undefined, token: Buffer): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const presented = m ? Buffer.from(m[1]!, 'utf8') : Buffer.alloc(0);
  // equal-length digests, so the comparison takes the same time whatever was sent
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b) && m !== null;
}

async function listenHttp(addr: ListenAddress, opts: ListenerOptions): Promise<{ server: HttpServer; url: string }> {
  const guard = {
    limits: new ClientLimits(opts.limits),
    warns: new WarnSummary((l) => opts.log.warn(l), opts.limits?.summaryWindowMs),
  };
  const server = createHttpServer((req, res) => {
    handleHttp(req, res, opts, guard).catch((err: unknown) => {
      opts.log.error(`listener: ${req.method} ${req.url}: ${(err as Error)?.message ?? String(err)}`);
      if (!res.headersSent) reply(res, 500, 'internal error');
      else res.destroy();
    });
  });
  server.on('close', () => guard.warns.close());
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new BundlemirrorError(
          'E_CONFIG',
          `cannot listen on ${addr.host}:${addr.port} ([bundlemirror] listen): ${err.code ?? err.message}`,
          {
            hint:
              err.code === 'EADDRINUSE'
                ? 'another process uses this port; choose another'
                : 'use an address this machine has, such as 127.0.0.1:8090',
            cause: err,
          },
        ),
      );
    });
    server.listen(addr.port, addr.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  return { server, url: `http://${host}:${port}` };
}

async function handleHttp(
  req: IncomingMessage,
  res: ServerResponse,
  opts: ListenerOptions,
  guard: Guard,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const client = req.socket.remoteAddress ?? '?';
  const wait = guard.limits.admit(client);
  if (wait !== null) {
    if (path === NOTIFY_PATH) opts.count('limited');
    guard.warns.note(
      'requests over the per-client limit',
      client,
      `too many requests or failed authentications; answered 429 (retry in ${wait} s)`,
    );
    return reply(res, 429, 'too many requests from this address; retry later', {
      'Retry-After': String(wait),
      Connection: 'close',
    });
  }
  if (path === METRICS_PATH) {
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'use GET', { Allow: 'GET, HEAD' });
    const body = await opts.metrics();
    res.writeHead(200, {
      'Content-Type': PROMETHEUS_CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  if (path !== NOTIFY_PATH)
    return reply(res, 404, `nothing here; notifications go to POST ${NOTIFY_PATH}, metrics are at GET ${METRICS_PATH}`);
  if (req.method !== 'POST') return reply(res, 405, 'use POST', { Allow: 'POST' });

  const token = opts.token();
  if (!token) {
    opts.count('disabled');
    return reply(res, 403, 'push notifications are off on this replica: set [bundlemirror] notify_token_file', {
      Connection: 'close',
    });
  }
  if (!bearerMatches(req.headers.authorization, token)) {
    opts.count('unauthorized');
    guard.limits.failed(client);
    guard.warns.note('notifications with a missing or wrong bearer token', client, 'missing or wrong bearer token');
    return reply(res, 401, 'missing or wrong bearer token', {
      'WWW-Authenticate': 'Bearer realm="bundlemirror"',
      Connection: 'close',
    });
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    opts.count('invalid');
    return reply(res, 413, `body larger than ${MAX_BODY_BYTES} bytes`, { Connection: 'close' });
  }
  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === null) {
    opts.count('invalid');
    return reply(res, 413, `body larger than ${MAX_BODY_BYTES} bytes`, { Connection: 'close' });
  }
  let parsed: z.infer<typeof NotifyBody>;
  try {
    parsed = NotifyBody.parse(JSON.parse(body.toString('utf8')));
  } catch {
    opts.count('invalid');
    return reply(res, 400, `expected JSON {"repos": ["/path/of/repo.git", ...]} with 1 to ${MAX_REPOS} paths`);
  }
  for (const p of parsed.repos) {
    const problem = repoPathProblem(p);
    if (problem) {
      opts.count('invalid');
      return reply(res, 400, `repository path ${JSON.stringify(p.slice(0, 200))} ${problem}`);
    }
  }
  opts.count('accepted');
  const outcome = opts.notify([...new Set(parsed.repos)], `http from ${req.socket.remoteAddress ?? '?'}`);
  const json = JSON.stringify(outcome) + '\n';
  res.writeHead(202, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(json),
    'Cache-Control': 'no-store',
  });
  res.end(json);
}

interface Guard {
  limits: ClientLimits;
  warns: WarnSummary;
}

/** The whole body, or null once it passes `max` bytes. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        req.removeAllListeners('data');
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(body);
}

async function closeHttp(server: HttpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/** grok-pull's listener: an existing socket file is replaced, anything else at that path is an error. */
async function listenSocket(path: string, opts: ListenerOptions): Promise<{ close(): Promise<void> }> {
  const st = await lstat(path).catch(() => null);
  if (st) {
    if (!st.isSocket()) {
      throw new BundlemirrorError('E_CONFIG', `[pull] socket ${path} exists and is not a socket`, {
        hint: 'choose another path, or remove that file',
      });
    }
    if (await socketAnswers(path)) {
      throw new BundlemirrorError('E_CONFIG', `another process listens on [pull] socket ${path}`, {
        hint: 'stop the other grok-pull or bundlemirror daemon, or choose another path',
      });
    }
    await rm(path, { force: true });
  }
  const conns = new Set<Socket>();
  const server = createNetServer((conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    handleSocketConnection(conn, opts);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new BundlemirrorError('E_CONFIG', `cannot listen on [pull] socket ${path}: ${err.code ?? err.message}`, {
          hint: 'the directory must exist and be writable by this user',
          cause: err,
        }),
      ),
    );
    server.listen(path, () => resolve());
  });
  try {
    // the origin's hook runs as another user (git): the group decides, as the socket takes no token
    if (opts.socketGroup !== undefined && opts.socketGroup !== null) await chown(path, -1, opts.socketGroup);
    await chmod(path, opts.socketMode ?? 0o660);
  } catch (err) {
    server.close();
    throw new BundlemirrorError(
      'E_CONFIG',
      `cannot set the owner group or mode of [pull] socket ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      {
        hint: 'this user must belong to [pull] socket_group',
        cause: err,
      },
    );
  }
  return {
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of conns) c.destroy();
      await closed;
      const left = await lstat(path).catch(() => null);
      if (left?.isSocket()) await rm(path, { force: true });
    },
  };
}

function handleSocketConnection(conn: Socket, opts: ListenerOptions): void {
  conn.setEncoding('utf8');
  conn.setTimeout(REQUEST_TIMEOUT_MS, () => conn.destroy());
  conn.on('error', () => {});
  let pending = '';
  let total = 0;
  let finished = false;
  const take = (lines: string[]): void => {
    const batch: string[] = [];
    for (const raw of lines) {
      const line = raw.trim();
      if (line === '') {
        finished = true; // a blank line ends the message, as in grok-pull
        break;
      }
      const problem = repoPathProblem(line);
      if (problem || batch.length >= MAX_REPOS) {
        opts.count('invalid');
        opts.log.warn(
          `listener: socket: refused ${JSON.stringify(line.slice(0, 200))}: ${problem ?? `more than ${MAX_REPOS} paths`}; closing the connection`,
        );
        finished = true;
        break;
      }
      batch.push(line);
    }
    if (batch.length) {
      opts.count('accepted');
      opts.notify([...new Set(batch)], 'socket');
    }
    if (finished) conn.end();
  };
  conn.on('data', (chunk: string) => {
    if (finished) return;
    total += Buffer.byteLength(chunk);
    if (total > MAX_BODY_BYTES) {
      opts.count('invalid');
      opts.log.warn(`listener: socket: more than ${MAX_BODY_BYTES} bytes in one connection; closing it`);
      finished = true;
      conn.destroy();
      return;
    }
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    take(lines);
  });
  conn.on('end', () => {
    if (!finished && pending.trim() !== '') take([pending]);
    finished = true;
    conn.end();
  });
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    const done = (alive: boolean) => {
      c.destroy();
      resolve(alive);
    };
    c.setTimeout(1000, () => done(false));
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}
