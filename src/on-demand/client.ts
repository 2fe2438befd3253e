/**
 * The client side of the on-demand service (`clone --via`, and `pull` with
 * `[remote] on_demand`): ask for an upstream URL, wait while the service
 * clones and bundles it (reporting its progress), and hand back where its
 * index is. The answer is network input: checked before anything uses it.
 */
import * as z from 'zod';
import { BundlemirrorError, type ErrorCode } from '../errors.js';
import { printable } from '../format/untrusted.js';
import { repoPathProblem } from '../git/refname.js';
import { sleep } from '../transfer/backoff.js';
import { requestJson } from '../transfer/json-api.js';

const ProgressSchema = z
  .object({
    phase: z.string().max(100),
    percent: z.number().nullable(),
    done: z.number().nullable(),
    total: z.number().nullable(),
    bytes: z.number().nullable(),
  })
  .nullable();

const JobSchema = z.object({
  path: z.string().max(1024),
  state: z.enum(['queued', 'cloning', 'bundling', 'ready', 'failed']),
  progress: ProgressSchema.optional(),
  error: z
    .object({ code: z.string().max(64), message: z.string().max(4096), hint: z.string().max(4096).optional() })
    .nullable()
    .optional(),
  index: z.string().max(4096).optional(),
  bundleList: z.string().max(4096).optional(),
});
const RefusalSchema = z.object({
  error: z.object({ code: z.string().max(64), message: z.string().max(4096), hint: z.string().max(4096).optional() }),
});

export type ServiceJob = z.infer<typeof JobSchema>;

export interface ReadyMirror {
  /** Manifest path of the mirror in the service's tree. */
  path: string;
  indexUrl: string;
  bundleListUrl: string;
}

export interface AskOptions {
  /** Called with each answer while the service works. */
  onUpdate?: (job: ServiceJob) => void;
  signal?: AbortSignal;
  /** Give up waiting after this long (default 6 h: a huge repository takes a while). */
  waitMs?: number;
  /** Longest pause between two questions (default 5 s). */
  maxPollMs?: number;
}

const KNOWN_CODES = new Set<string>([
  'E_URL_INVALID',
  'E_URL_SCHEME',
  'E_URL_USERINFO',
  'E_URL_NOT_ALLOWED',
  'E_URL_ADDRESS',
  'E_URL_REDIRECT',
  'E_REPO_TOO_LARGE',
  'E_UPSTREAM',
  'E_BUSY',
  'E_USAGE',
  'E_NOT_FOUND',
]);

function serviceError(
  service: string,
  e: { code: string; message: string; hint?: string | undefined },
  upstream: string,
): BundlemirrorError {
  const code = (KNOWN_CODES.has(e.code) ? e.code : 'E_UPSTREAM') as ErrorCode;
  return new BundlemirrorError(code, `the service ${service} cannot provide ${upstream}: ${printable(e.message)}`, {
    repo: upstream,
    hint: e.hint ? printable(e.hint) : undefined,
  });
}

function checkServiceUrl(service: string): string {
  let u: URL;
  try {
    u = new URL(service);
  } catch {
    throw new BundlemirrorError('E_USAGE', `--via ${JSON.stringify(service)} is not a URL`, {
      hint: 'pass the service address, e.g. http://bundles.example.org:8080',
    });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new BundlemirrorError('E_USAGE', `--via takes an http(s) URL, not ${u.protocol}`);
  return u.origin + u.pathname.replace(/\/+$/, '');
}

/** Asks the service for `upstream` and waits until its bundles are ready. */
export async function askService(serviceUrl: string, upstream: string, opts: AskOptions = {}): Promise<ReadyMirror> {
  const service = checkServiceUrl(serviceUrl);
  const api = `${service}/api/on-demand`;
  const deadline = Date.now() + (opts.waitMs ?? 6 * 3600_000);
  let res = await requestJson(api, { method: 'POST', json: { url: upstream }, signal: opts.signal });
  for (;;) {
    const job = JobSchema.safeParse(res.body);
    if (!job.success) {
      const refusal = RefusalSchema.safeParse(res.body);
      if (refusal.success) throw serviceError(service, refusal.data.error, upstream);
      throw new BundlemirrorError('E_HTTP', `${api} answered ${res.status} without a job`, {
        repo: upstream,
        hint: 'is this a bundlemirror service with --on-demand?',
      });
    }
    const j = job.data;
    if (repoPathProblem(j.path))
      throw new BundlemirrorError(
        'E_UNSAFE_NAME',
        `the service named the mirror ${JSON.stringify(printable(j.path))}`,
        { repo: upstream },
      );
    if (j.state === 'failed')
      throw serviceError(service, j.error ?? { code: 'E_UPSTREAM', message: 'the job failed' }, upstream);
    if (j.state === 'ready') {
      if (!j.index || !j.bundleList)
        throw new BundlemirrorError('E_HTTP', `${api}: a ready job without index`, { repo: upstream });
      return { path: j.path, indexUrl: j.index, bundleListUrl: j.bundleList };
    }
    opts.onUpdate?.(j);
    if (Date.now() > deadline)
      throw new BundlemirrorError('E_UPSTREAM', `the service is still preparing ${upstream}`, {
        repo: upstream,
        hint: 'run the same command again later',
      });
    const after = Number(res.headers['retry-after']);
    await sleep(
      Math.min(Number.isFinite(after) && after > 0 ? after * 1000 : 1000, opts.maxPollMs ?? 5000),
      opts.signal,
    );
    res = await requestJson(`${api}?url=${encodeURIComponent(upstream)}`, { signal: opts.signal });
    // the service restarted and forgot the job: ask again
    if (res.status === 404)
      res = await requestJson(api, { method: 'POST', json: { url: upstream }, signal: opts.signal });
  }
}

/** One line describing what the service is doing, for a terminal. */
export function describeJob(j: ServiceJob): string {
  const p = j.progress;
  if (!p) return `service: ${j.state}`;
  const pct = p.percent !== null ? ` ${p.percent}%` : '';
  const count = p.total !== null ? ` (${p.done}/${p.total})` : '';
  const bytes = p.bytes !== null ? `, ${(p.bytes / 1048576).toFixed(1)} MiB` : '';
  return `service: ${j.state}: ${printable(p.phase)}${pct}${count}${bytes}`;
}
