/**
 * The URL clients used to reach us, for the absolute URLs we hand out
 * (bundle-list for git 2.39, the commands on the HTML page). The Host
 * header is client input: only host[:port] characters are accepted,
 * otherwise the address the connection arrived on is used.
 */
import type { IncomingMessage } from 'node:http';

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

export function isValidHostHeader(host: string): boolean {
  return host.length <= 300 && HOST.test(host);
}

/** `host:port` for a URL, bracketing IPv6 and unmapping IPv4-mapped addresses. */
export function hostPort(address: string, port: number): string {
  const a = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

/** `http://host[:port]` without a trailing slash. */
export function requestOrigin(req: IncomingMessage): string {
  const host = req.headers.host;
  if (host !== undefined && isValidHostHeader(host)) return `http://${host}`;
  const sock = req.socket;
  return `http://${hostPort(sock.localAddress ?? '127.0.0.1', sock.localPort ?? 80)}`;
}
