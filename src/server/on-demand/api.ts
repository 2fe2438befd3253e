/**
 * `/api/on-demand`: POST `{"url": "..."}` asks for a mirror (starting a job
 * when needed), GET `?url=...` reads the job without starting one. Both
 * answer with the job as JSON: 202 and Retry-After while it works, 200 when
 * ready (with the URLs of its bundle-list, index and bundles), and for a
 * failure or a refused URL a 4xx/5xx whose `error.code` names the rule.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BundlemirrorError, isBundlemirrorError, type ErrorCode } from '../../errors.js';
import { BUNDLE_LIST_FILE, INDEX_FILE } from '../../manifest/repo-index.js';
import type { JobView, OnDemandService } from '../../on-demand/service.js';
import { requestOrigin } from '../base-url.js';
import { shellQuote } from '../page.js';
import { methodNotAllowed, sendBody } from '../reply.js';

export const API_PATH = '/api/on-demand';
/** Where the on-demand published tree is mounted. */
export const TREE_PREFIX = '/on-demand';

const MAX_BODY = 16 << 10;
const RETRY_AFTER_S = 1;

const STATUS: Partial<Record<ErrorCode, number>> = {
  E_USAGE: 400,
  E_URL_INVALID: 400,
  E_URL_SCHEME: 400,
  E_URL_USERINFO: 400,
  E_URL_NOT_ALLOWED: 403,
  E_URL_ADDRESS: 403,
  E_URL_REDIRECT: 403,
  E_NOT_FOUND: 404,
  E_REPO_TOO_LARGE: 413,
  E_UPSTREAM: 502,
  E_BUSY: 503,
};

function statusOf(code: string): number {
  return STATUS[code as ErrorCode] ?? 500;
}

function sendJson(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendBody(req, res, status, 'application/json; charset=utf-8', JSON.stringify(body, null, 1) + '\n', headers);
}

function sendError(req: IncomingMessage, res: ServerResponse, err: BundlemirrorError): void {
  sendJson(req, res, statusOf(err.code), {
    error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) },
  });
}

function urlPath(repoPath: string): string {
  // ':' stays as it is (host:port directories): legal in a path, and what a person expects to read
  return repoPath
    .split('/')
    .map((c) => encodeURIComponent(c).replace(/%3A/g, ':'))
    .join('/');
}

/** The job as clients see it: absolute URLs for this request's host, and the commands to run. */
function jobJson(job: JobView, origin: string): Record<string, unknown> {
  const base = `${origin}${TREE_PREFIX}${urlPath(job.path)}`;
  const out: Record<string, unknown> = { ...job, bundles: undefined };
  if (job.state === 'ready' && job.bundles) {
    const dir = (job.path.split('/').pop() ?? 'repo').replace(/\.git$/, '') || 'repo';
    out.bundleList = `${base}/${BUNDLE_LIST_FILE}`;
    out.index = `${base}/${INDEX_FILE}`;
    out.bundles = job.bundles.map((b) => ({ url: new URL(b.uri, `${base}/`).href, size: b.size, sha256: b.sha256 }));
    out.commands = {
      bundlemirror: `bundlemirror clone --via ${shellQuote(origin)} ${shellQuote(job.url)} ${shellQuote(dir)}`,
      git: `git clone --bundle-uri=${shellQuote(`${base}/${BUNDLE_LIST_FILE}`)} ${shellQuote(job.url)} ${shellQuote(dir)}`,
    };
  }
  return out;
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new BundlemirrorError('E_USAGE', `request body larger than ${MAX_BODY} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

async function urlFromPost(req: IncomingMessage): Promise<string> {
  const text = await readBody(req);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new BundlemirrorError('E_USAGE', 'the body must be JSON: {"url": "https://..."}');
  }
  const url = (body as { url?: unknown } | null)?.url;
  if (typeof url !== 'string') throw new BundlemirrorError('E_USAGE', 'the body must be JSON: {"url": "https://..."}');
  return url;
}

export function onDemandApiHandler(service: OnDemandService) {
  return async function serveApi(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'POST')
      return methodNotAllowed(req, res, ['GET', 'HEAD', 'POST']);
    try {
      let job: JobView | null;
      if (req.method === 'POST') job = await service.request(await urlFromPost(req));
      else {
        const url = new URL(target, 'http://x').searchParams.get('url');
        if (url === null) throw new BundlemirrorError('E_USAGE', 'GET needs ?url=<upstream repository URL>');
        job = await service.lookup(url);
        if (job === null)
          throw new BundlemirrorError('E_NOT_FOUND', 'no job for this URL yet', {
            hint: 'POST {"url": ...} to start one',
          });
      }
      const body = jobJson(job, requestOrigin(req));
      if (job.state === 'ready') return sendJson(req, res, 200, body);
      if (job.state === 'failed') return sendJson(req, res, statusOf(job.error?.code ?? ''), body);
      return sendJson(req, res, 202, body, { 'Retry-After': String(RETRY_AFTER_S) });
    } catch (err) {
      if (isBundlemirrorError(err)) return sendError(req, res, err);
      throw err;
    }
  };
}
