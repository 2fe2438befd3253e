/**
 * Plain HTTP requests for tests: the request target is sent exactly as
 * given (no normalisation of `..` or percent-encoding, unlike fetch or got),
 * and the whole body comes back as bytes.
 */
import { request as httpRequest, type Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: Buffer | string;
  agent?: Agent | false;
  timeoutMs?: number;
}

/** `base` is `http://127.0.0.1:PORT`; `target` is the raw request target (`/a/../b?x`). */
export function request(base: string, target: string, opts: RequestOptions = {}): Promise<HttpResult> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: target,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error(`request ${target} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export { seededRandom as prng } from '../../src/faults/random.js';
