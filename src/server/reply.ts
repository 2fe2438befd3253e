/** Short plain-text answers (errors, refusals) that tell a person what happened. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function sendText(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  const body = text.endsWith('\n') ? text : `${text}\n`;
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: string[]): void {
  sendText(req, res, 405, `method ${req.method ?? '?'} not allowed here (allowed: ${allow.join(', ')})`, {
    Allow: allow.join(', '),
  });
}
