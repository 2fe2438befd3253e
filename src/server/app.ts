/**
 * The request listener behind `serve`: the page at `/`, read-only smart
 * HTTP at `/git/` (only with a toplevel), and the published tree everywhere
 * else (only with one: a replica may serve its repositories alone).
 *
 * Routing is done here on the raw request target, and node's own request
 * and response objects reach every handler unchanged: every handler below
 * must see exactly the bytes the client sent to make its own safety checks
 * (a router matches case-insensitively and decodes before matching), and a
 * framework that swaps the prototypes of both objects on every request
 * costs a server answering thousands of small ranges a second more than
 * the rest of its work (`npm run bench`, scenario 6).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { logRequests, printable, type LogLine } from './access-log.js';
import { METRICS_PATH, ServeMetrics } from './metrics.js';
import { catalogSource } from './catalog.js';
import { pageHandler, wantsHtml } from './page.js';
import { methodNotAllowed, sendText } from './reply.js';
import { splitTarget } from './safe-path.js';
import { GIT_PREFIX, smartHttpHandler } from './smart-http.js';
import { servedManifestSource } from './served-manifest.js';
import { BackendLimits, type BackendLimitOptions } from './backend-limits.js';
import { publishedTreeHandler } from './static.js';
import type { OpenFileCache } from './open-files.js';
import { lfsApi } from './lfs/handler.js';
import type { LfsWriters } from '../lfs/writers.js';
import type { OnDemandService } from '../on-demand/service.js';
import { API_PATH, onDemandApiHandler, TREE_PREFIX } from './on-demand/api.js';
import { onDemandPageHandler, PAGE_PATH } from './on-demand/page.js';

export interface AppOptions {
  /** Real path of the published tree; null: repositories only (with a toplevel) or only the on-demand service. */
  realBundles: string | null;
  /** Real path of the toplevel of bare repositories; null disables smart HTTP. */
  realToplevel: string | null;
  /** The manifest whose repositories are served (smart HTTP and the page); null: only the on-demand service. */
  manifestFile: string | null;
  /** Access log and server-side problems; null for silence. */
  log: LogLine | null;
  /** Who may upload LFS objects and take locks; null or absent: nobody here. */
  lfsWriters?: LfsWriters | null;
  /** The master's base URL: pushes, LFS uploads and locks are redirected there. */
  pushTo?: string | null;
  /** Bounds on `git http-backend` processes and request bodies (defaults: see backend-limits.ts). */
  gitLimits?: BackendLimitOptions | undefined;
  /** Counters served at /metrics; default: a fresh set; false: no /metrics. */
  metrics?: ServeMetrics | false;
  /** Keeps content-addressed files open between requests; the caller closes it when the server stops. */
  openFiles: OpenFileCache;
  /** The on-demand service: its API, its page and its published tree under /on-demand/. */
  onDemand?: { service: OnDemandService; realPublished: string } | null;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export function buildApp(opts: AppOptions): RequestListener {
  const log = opts.log ?? (() => undefined);
  const published = opts.realBundles === null ? null : publishedTreeHandler(opts.realBundles, opts.openFiles, log);
  const manifest = opts.manifestFile === null ? null : servedManifestSource(opts.manifestFile);
  const limits = new BackendLimits(opts.gitLimits);
  const lfs = lfsApi({ writers: opts.lfsWriters ?? null, pushTo: opts.pushTo ?? null, log });
  const git =
    opts.realToplevel === null || manifest === null
      ? null
      : smartHttpHandler({
          realToplevel: opts.realToplevel,
          manifest,
          log,
          lfs,
          lfsWriters: opts.lfsWriters ?? null,
          pushTo: opts.pushTo ?? null,
          limits,
        });
  const page =
    manifest === null
      ? null
      : pageHandler({
          catalog: catalogSource(manifest, opts.realBundles),
          smartHttp: git !== null,
          publishedTree: published !== null,
        });
  const od = opts.onDemand ?? null;
  const odApi = od ? onDemandApiHandler(od.service) : null;
  const odPage = od ? onDemandPageHandler(od.service.policy.patterns.map((p) => p.text)) : null;
  const odTree = od ? publishedTreeHandler(od.realPublished, opts.openFiles, log, TREE_PREFIX) : null;

  const accessLog = opts.log ? logRequests(opts.log) : null;
  const metrics = opts.metrics === false ? null : (opts.metrics ?? new ServeMetrics());
  if (metrics && git) metrics.watchBackends(limits);

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = req.url ?? '/';
    const { path } = splitTarget(target);
    if (path === '/') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, ['GET', 'HEAD']);
      if (!page) return sendText(req, res, 302, `see ${PAGE_PATH}`, { Location: PAGE_PATH });
      return page.list(req, res);
    }
    if (odApi && path === API_PATH) return odApi(req, res, target);
    if (odPage && path === PAGE_PATH) return odPage(req, res);
    if (odTree && path.startsWith(`${TREE_PREFIX}/`)) return odTree(req, res, target.slice(TREE_PREFIX.length));
    if (metrics && path === METRICS_PATH) return metrics.handle(req, res);
    if (git && (path === GIT_PREFIX || path.startsWith(`${GIT_PREFIX}/`))) return git(req, res, target);
    // a browser opening the URL people give to `clone` gets the repository's page; other clients get the files as before
    if (page && (req.method === 'GET' || req.method === 'HEAD') && wantsHtml(req) && (await page.repo(req, res, path)))
      return;
    if (!published) return sendText(req, res, 404, 'not found');
    return published(req, res, target);
  };
  // reached only by a bug: say so without details, and never leave a response half-sent
  const internalError = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    log(`internal error on ${req.method} ${printable(req.url ?? '')}: ${(err as Error)?.stack ?? String(err)}`);
    if (res.headersSent) res.destroy();
    else sendText(req, res, 500, 'internal error');
  };
  return (req, res) => {
    accessLog?.(req, res);
    metrics?.count(req, res);
    route(req, res).catch((err: unknown) => internalError(req, res, err));
  };
}
