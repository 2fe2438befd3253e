/**
 * The HTTP listener: POST /notify with a bearer token and a JSON list of
 * repositories, GET /metrics, nothing else. Slow, oversized and
 * unauthenticated requests are cut off before they cost the daemon anything.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import * as z from 'zod';
import { BundlemirrorError } from '../../errors.js';
import { repoPathProblem } from '../../git/refname.js';
import { sendMetrics } from '../../metrics/prometheus.js';
import type { ListenAddress } from './daemon-config.js';
import { ClientLimits, WarnSummary } from './client-limits.js';
import {
  MAX_BODY_BYTES,
  MAX_REPOS,
  METRICS_PATH,
  NOTIFY_PATH,
  REQUEST_TIMEOUT_MS,
  type ListenerOptions,
} from './notify-protocol.js';

const NotifyBody = z.object({ repos: z.array(z.string()).min(1).max(MAX_REPOS) });

/** Constant-time comparison of a presented bearer token with the configured one. */
export function bearerMatches(header: string | undefined, token: Buffer): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const presented = m ? Buffer.from(m[1]!, 'utf8') : Buffer.alloc(0);
  // equal-length digests, so the comparison takes the same time whatever was sent
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b) && m !== null;
}

export async function listenHttp(
  addr: ListenAddress,
  opts: ListenerOptions,
): Promise<{ server: HttpServer; url: string }> {
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
    sendMetrics(req, res, await opts.metrics());
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

export async function closeHttp(server: HttpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
