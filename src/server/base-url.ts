/**
 * The URL clients used to reach us, for the absolute URLs we hand out
 * (bundle-list for git 2.39, the commands on the HTML page). The Host
 * header is client input: only host[:port] characters are accepted,
 * otherwise the address the connection arrived on is used.
 */
import type { IncomingMessage } from 'node:http';

const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

export function isValidHostHeader(host: string): boolean {
  return host.length <= 300 && HOST.test(host);
}

/** `host:port` for a URL, bracketing IPv6 and unmapping IPv4-mapped addresses. */
export function hostPort(address: string, port: number): string {
  const a = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

/**
 * `https` when a proxy on this machine (nginx terminating TLS, connecting
 * from loopback) says so with `X-Forwarded-Proto: https`; a remote client
 * cannot claim it.
 */
function scheme(req: IncomingMessage): 'http' | 'https' {
  const peer = req.socket.remoteAddress ?? '';
  const local = peer === '127.0.0.1' || peer === '::1' || peer === '::ffff:127.0.0.1';
  return local && req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
}

/** `http://host[:port]` (or https behind a local TLS proxy) without a trailing slash. */
export function requestOrigin(req: IncomingMessage): string {
  const host = req.headers.host;
  if (host !== undefined && isValidHostHeader(host)) return `${scheme(req)}://${host}`;
  const sock = req.socket;
  return `http://${hostPort(sock.localAddress ?? '127.0.0.1', sock.localPort ?? 80)}`;
}
