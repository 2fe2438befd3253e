/**
 * A pass-through stream that hashes (sha256) and counts what flows through
 * it, so bytes written to disk never have to be read back to be verified.
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

export function hashingTee(): { stream: Transform; result: () => { sha256: string; size: number } } {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, result: () => ({ sha256: hash.digest('hex'), size }) };
}
