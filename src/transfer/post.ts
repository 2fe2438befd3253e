/**
 * One small POST with a hard time limit and no retries, for messages whose
 * loss costs only time (push notifications: a replica that misses one pulls
 * at its next refresh). Never rejects: the outcome says what happened.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface PostOutcome {
  ok: boolean;
  /** HTTP status, when the receiver answered. */
  status?: number;
  /** What went wrong (status and first line of the answer, or the network error), when ok is false. */
  error?: string;
}

export function postOnce(
  url: string,
  body: string,
  opts: { headers: Record<string, string>; timeoutMs: number },
): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const request = u.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const done = (r: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = request(
      u,
      {
        method: 'POST',
        agent: false,
        headers: { ...opts.headers, 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (text.length < 1000) text += c;
        });
        res.on('end', () =>
          done(
            status >= 200 && status < 300
              ? { ok: true, status }
              : { ok: false, status, error: `${status}: ${text.trim().split('\n')[0] ?? ''}` },
          ),
        );
        res.on('error', (err) => done({ ok: false, status, error: err.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) =>
      done({
        ok: false,
        error: err.code && err.code !== 'ERR_STREAM_DESTROYED' ? `${err.code}: ${err.message}` : err.message,
      }),
    );
    req.end(body);
  });
}
