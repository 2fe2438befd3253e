/**
 * `serve`'s counters at `/metrics` (Prometheus text): requests by status
 * class, body bytes sent, responses the client abandoned (how a broken
 * download looks from the server) and requests in flight. Counted once per
 * response, when it finishes or the client hangs up.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LabelledCounter, renderPrometheus, sendMetrics, single } from '../metrics/prometheus.js';
import { byteCount } from './access-log.js';
import { methodNotAllowed } from './reply.js';
import type { BackendLimits } from './backend-limits.js';

export const METRICS_PATH = '/metrics';

function backendFamilies(b: BackendLimits) {
  return [
    single('bundlemirror_serve_git_backends_running', 'git http-backend processes running now.', 'gauge', b.running),
    single(
      'bundlemirror_serve_git_backends_limit',
      'git http-backend processes allowed at once (--git-backends).',
      'gauge',
      b.max,
    ),
    single(
      'bundlemirror_serve_git_requests_waiting',
      'Smart-HTTP requests waiting for a backend now.',
      'gauge',
      b.waiting,
    ),
    single(
      'bundlemirror_serve_git_requests_refused_total',
      'Smart-HTTP requests refused for load: no backend in time (503) or a request body too slow or too large (408, 413).',
      'counter',
      b.refused,
    ),
  ];
}

export class ServeMetrics {
  private readonly requests = new LabelledCounter(['1xx', '2xx', '3xx', '4xx', '5xx']);
  private bytesSent = 0;
  private aborted = 0;
  private inFlight = 0;
  private backends: BackendLimits | null = null;

  /** Adds the smart-HTTP backend gauges (running, waiting) and the count of requests refused for load. */
  watchBackends(limits: BackendLimits): void {
    this.backends = limits;
  }

  /** Counts every request and the body bytes written for it; called as each request arrives. */
  readonly count = (_req: IncomingMessage, res: ServerResponse): void => {
    this.inFlight += 1;
    const write0 = res.write;
    const end0 = res.end;
    const self = this;
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      self.bytesSent += byteCount(chunk, rest[0]);
      return (write0 as (...args: unknown[]) => boolean).apply(this, [chunk, ...rest]);
    } as typeof res.write;
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== 'function') self.bytesSent += byteCount(chunk, rest[0]);
      return (end0 as (...args: unknown[]) => ServerResponse).apply(this, [chunk, ...rest]);
    } as typeof res.end;
    let counted = false;
    const done = () => {
      if (counted) return;
      counted = true;
      this.inFlight -= 1;
      this.requests.inc(`${Math.min(5, Math.max(1, Math.floor(res.statusCode / 100)))}xx`);
      if (!res.writableFinished) this.aborted += 1;
    };
    res.on('finish', done);
    res.on('close', done);
  };

  /** Answers GET/HEAD /metrics. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, ['GET', 'HEAD']);
    sendMetrics(req, res, this.render());
  }

  render(): string {
    return renderPrometheus([
      {
        name: 'bundlemirror_serve_requests_total',
        help: 'HTTP requests answered, by status class.',
        type: 'counter',
        samples: this.requests.samples('class'),
      },
      single(
        'bundlemirror_serve_response_bytes_total',
        'Response body bytes written to clients.',
        'counter',
        this.bytesSent,
      ),
      single(
        'bundlemirror_serve_aborted_responses_total',
        'Responses the client hung up on before they were complete.',
        'counter',
        this.aborted,
      ),
      single('bundlemirror_serve_requests_in_flight', 'Requests being answered now.', 'gauge', this.inFlight),
      ...(this.backends === null ? [] : backendFamilies(this.backends)),
    ]);
  }
}
