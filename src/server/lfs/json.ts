/** Bounded JSON bodies in, `application/vnd.git-lfs+json` out: the wire format of the Git LFS API. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendBody } from '../reply.js';

const LFS_MEDIA_TYPE = 'application/vnd.git-lfs+json';

export function sendLfsJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendBody(req, res, status, LFS_MEDIA_TYPE, JSON.stringify(body) + '\n', headers);
}

/** An LFS error response: a `message` people can read, plus anything the spec adds (a conflicting lock). */
export function sendLfsError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  message: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): void {
  sendLfsJson(req, res, status, { ...extra, message }, headers);
}

/** Bodies up to this size are drained after a refusal instead of closing the connection under the client. */
const DRAIN_LIMIT = 64 << 20;

type BodyResult = { ok: true; value: unknown } | { ok: false; status: 400 | 413; message: string };

/**
 * Reads at most `maxBytes` of request body and parses it as JSON. A body
 * announced or found larger is refused (413) without reading the rest; the
 * connection is closed so the unread bytes cannot be taken for a request.
 */
export async function readJsonBody(req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<BodyResult> {
  const announced = Number(req.headers['content-length'] ?? NaN);
  const tooLarge: BodyResult = {
    ok: false,
    status: 413,
    message: `request body larger than ${maxBytes} bytes; send fewer objects per request`,
  };
  if (Number.isFinite(announced) && announced > maxBytes) {
    // a modest excess is read and discarded (the client then sees the answer, not a reset); more is cut off
    if (announced > DRAIN_LIMIT) res.setHeader('Connection', 'close');
    return tooLarge;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        res.setHeader('Connection', 'close');
        return tooLarge;
      }
      chunks.push(chunk as Buffer);
    }
  } catch {
    return { ok: false, status: 400, message: 'request body was cut off' };
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, status: 400, message: 'request body is not valid JSON' };
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
