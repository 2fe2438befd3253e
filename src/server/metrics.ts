/**
 * `serve`'s counters at `/metrics` (Prometheus text): requests by status
 * class, body bytes sent, responses the client abandoned (how a broken
 * download looks from the server) and requests in flight. Counted once per
 * response, when it finishes or the client hangs up.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LabelledCounter, PROMETHEUS_CONTENT_TYPE, renderPrometheus } from '../metrics/prometheus.js';
import { byteCount } from './access-log.js';
import { methodNotAllowed } from './reply.js';
import type { BackendLimits } from './backend-limits.js';

export const METRICS_PATH = '/metrics';

function backendFamilies(b: BackendLimits) {
  return [
    {
      name: 'bundlemirror_serve_git_backends_running',
      help: 'git http-backend processes running now.',
      type: 'gauge' as const,
      samples: [{ value: b.running }],
    },
    {
      name: 'bundlemirror_serve_git_backends_limit',
      help: 'git http-backend processes allowed at once (--git-backends).',
      type: 'gauge' as const,
      samples: [{ value: b.max }],
    },
    {
      name: 'bundlemirror_serve_git_requests_waiting',
      help: 'Smart-HTTP requests waiting for a backend now.',
      type: 'gauge' as const,
      samples: [{ value: b.waiting }],
    },
    {
      name: 'bundlemirror_serve_git_requests_refused_total',
      help: 'Smart-HTTP requests refused for load: no backend in time (503) or a request body too slow or too large (408, 413).',
      type: 'counter' as const,
      samples: [{ value: b.refused }],
    },
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
    const body = this.render();
    res.statusCode = 200;
    res.setHeader('Content-Type', PROMETHEUS_CONTENT_TYPE);
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.setHeader('Cache-Control', 'no-store');
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  render(): string {
    return renderPrometheus([
      {
        name: 'bundlemirror_serve_requests_total',
        help: 'HTTP requests answered, by status class.',
        type: 'counter',
        samples: this.requests.samples('class'),
      },
      {
        name: 'bundlemirror_serve_response_bytes_total',
        help: 'Response body bytes written to clients.',
        type: 'counter',
        samples: [{ value: this.bytesSent }],
      },
      {
        name: 'bundlemirror_serve_aborted_responses_total',
        help: 'Responses the client hung up on before they were complete.',
        type: 'counter',
        samples: [{ value: this.aborted }],
      },
      {
        name: 'bundlemirror_serve_requests_in_flight',
        help: 'Requests being answered now.',
        type: 'gauge',
        samples: [{ value: this.inFlight }],
      },
      ...(this.backends === null ? [] : backendFamilies(this.backends)),
    ]);
  }
}
