/**
 * Small generated answers (errors, refusals, JSON, pages): one place that sets
 * their length, caching (not stored unless a header says otherwise) and
 * nosniff, and sends no body to HEAD.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** A plain-text answer that tells a person what happened. */
export function sendText(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  sendBody(req, res, status, 'text/plain; charset=utf-8', text.endsWith('\n') ? text : `${text}\n`, headers);
}

export function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string[]): void {
  sendText(req, res, 405, `method ${req.method ?? '?'} not allowed here (allowed: ${allow.join(', ')})`, {
    Allow: allow.join(', '),
  });
}
