/**
 * Who is asking: HTTP Basic credentials checked against the writers file.
 * Reads are anonymous; every write (upload, verify, locks) names a writer.
 */
import type { IncomingMessage } from 'node:http';
import type { LfsWriters } from '../../lfs/writers.js';

export const LFS_AUTHENTICATE = 'Basic realm="bundlemirror LFS", charset="UTF-8"';

export type Caller = { kind: 'anonymous' } | { kind: 'writer'; name: string } | { kind: 'refused' };

export function callerOf(req: IncomingMessage, writers: LfsWriters | null): Caller {
  const header = req.headers.authorization;
  if (header === undefined) return { kind: 'anonymous' };
  const m = /^Basic\s+([A-Za-z0-9+/=]{1,2048})\s*$/i.exec(header);
  if (!m || !writers) return { kind: 'refused' };
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { kind: 'refused' };
  const name = writers.check(decoded.slice(0, colon), decoded.slice(colon + 1));
  return name === null ? { kind: 'refused' } : { kind: 'writer', name };
}
