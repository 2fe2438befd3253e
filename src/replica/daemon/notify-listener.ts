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
import { readFile, stat } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import { BundlemirrorError } from '../../errors.js';
import type { ListenerOptions } from './notify-protocol.js';
import { closeHttp, listenHttp } from './notify-http.js';
import { listenSocket } from './notify-socket.js';

export type { ListenerOptions, NotifyOutcome } from './notify-protocol.js';

export interface Listeners {
  /** `http://host:port` of the HTTP listener, or null. */
  url: string | null;
  socket: string | null;
  close(): Promise<void>;
}

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
