/**
 * Prometheus text exposition format (version 0.0.4): what `serve` and
 * `pull --daemon` answer at /metrics. Counters end in `_total`; label
 * values are escaped as the format requires.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A family of one unlabelled sample: most of what serve and the daemon report. */
export function single(name: string, help: string, type: MetricFamily['type'], value: number): MetricFamily {
  return { name, help, type, samples: [{ value }] };
}

/** Answers GET or HEAD of a /metrics page with `body` (never cached: every scrape wants now). */
export function sendMetrics(req: IncomingMessage, res: ServerResponse, body: string): void {
  res.writeHead(200, {
    'Content-Type': PROMETHEUS_CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function renderPrometheus(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    if (!NAME.test(f.name)) throw new TypeError(`bad metric name ${JSON.stringify(f.name)}`);
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) out.push(`${f.name}${labels(s.labels)} ${number(s.value)}`);
  }
  return out.join('\n') + '\n';
}

function labels(l: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(l ?? {});
  if (entries.length === 0) return '';
  return `{${entries
    .map(([k, v]) => {
      if (!LABEL.test(k)) throw new TypeError(`bad label name ${JSON.stringify(k)}`);
      return `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`;
    })
    .join(',')}}`;
}

function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** A counter keyed by one label's value, rendered in insertion order. */
export class LabelledCounter {
  private readonly values = new Map<string, number>();

  constructor(initial: readonly string[] = []) {
    for (const k of initial) this.values.set(k, 0);
  }

  inc(key: string, by = 1): void {
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(key: string): number {
    return this.values.get(key) ?? 0;
  }

  samples(label: string): Sample[] {
    return [...this.values].map(([k, value]) => ({ labels: { [label]: k }, value }));
  }
}
