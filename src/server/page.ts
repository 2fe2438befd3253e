/**
 * The page at `/` for people: what this mirror holds and how to clone it.
 * Everything from the manifest is escaped (a description is whatever the
 * repository owner wrote); no scripts, no external assets, and a CSP that
 * forbids both in case an escape is ever missed.
 */
import { formatBytes } from '../format/bytes.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BUNDLE_LIST_FILE, INDEX_FILE } from '../manifest/repo-index.js';
import type { Catalog, RepoSummary } from './catalog.js';
import { requestOrigin } from './base-url.js';
import { MANIFEST_FILE } from '../manifest/tree.js';
import { GIT_PREFIX } from './smart-http.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Single-quotes a shell word unless it is plainly safe, so commands can be pasted as they are. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9._/:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function formatModified(seconds: number | null): string {
  if (seconds === null) return 'unknown';
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? 'unknown' : `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** `/pub/a b.git` as a URL path: each component percent-encoded. */
function urlPath(repoPath: string): string {
  return repoPath
    .split('/')
    .map((p) => encodeURIComponent(p))
    .join('/');
}

/** The directory a clone lands in: the last component without `.git`. */
function cloneDir(repoPath: string): string {
  const last = repoPath.split('/').pop() ?? 'repo';
  return last.replace(/\.git$/, '') || 'repo';
}

export interface PageContext {
  /** `http://host:port`, no trailing slash. */
  origin: string;
  smartHttp: boolean;
  /** False when serving repositories only (a replica without a published tree): no bundles to point at. */
  publishedTree: boolean;
}

function renderRepo(r: RepoSummary, ctx: PageContext): string {
  const base = `${ctx.origin}${urlPath(r.path)}`;
  const dir = cloneDir(r.path);
  const commands: string[] = [];
  const gitUrl = shellQuote(`${ctx.origin}${GIT_PREFIX}${urlPath(r.path)}`);
  if (ctx.smartHttp && ctx.publishedTree) {
    commands.push(`git clone --bundle-uri=${shellQuote(`${base}/${BUNDLE_LIST_FILE}`)} ${gitUrl} ${shellQuote(dir)}`);
  } else if (ctx.smartHttp) {
    commands.push(`git clone ${gitUrl} ${shellQuote(dir)}`);
  }
  if (ctx.publishedTree) commands.push(`bundlemirror clone ${shellQuote(`${base}/${INDEX_FILE}`)} ${shellQuote(dir)}`);
  const bundles = r.bundles === null ? 'index.json missing or unreadable' : `${r.bundles.count} (${formatBytes(r.bundles.size)})`;
  const facts = [
    ['last change', formatModified(r.modified)],
    ...(ctx.publishedTree ? [['bundles', bundles]] : []),
    ...(r.owner ? [['owner', r.owner]] : []),
  ];
  const title = ctx.publishedTree ? `<a href="${escapeHtml(`${urlPath(r.path)}/${INDEX_FILE}`)}">${escapeHtml(r.path)}</a>` : escapeHtml(r.path);
  return [
    '<section>',
    `<h2>${title}</h2>`,
    r.description ? `<p>${escapeHtml(r.description)}</p>` : '',
    `<dl>${facts.map(([k, v]) => `<dt>${escapeHtml(k!)}</dt><dd>${escapeHtml(v!)}</dd>`).join('')}</dl>`,
    `<pre>${commands.map(escapeHtml).join('\n')}</pre>`,
    '</section>',
  ].join('\n');
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4;color:#222}
section{border-top:1px solid #ccc;padding:.5rem 0}h2{font-size:1.1rem;margin:.5rem 0}
dl{display:grid;grid-template-columns:max-content auto;gap:0 1rem;margin:.5rem 0}dt{color:#666}dd{margin:0}
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}`;

export function renderPage(catalog: Catalog, ctx: PageContext): string {
  const count = `<p>${catalog.repos.length} ${catalog.repos.length === 1 ? 'repository' : 'repositories'}. `;
  const intro = !catalog.published
    ? `<p>Nothing is published here yet: there is no ${escapeHtml(MANIFEST_FILE)}.</p>`
    : !ctx.publishedTree
      ? `${count}git fetches from ${escapeHtml(`${ctx.origin}${GIT_PREFIX}/`)}&lt;repository&gt;.</p>`
      : count +
      `Replicas poll <a href="/${escapeHtml(MANIFEST_FILE)}">${escapeHtml(MANIFEST_FILE)}</a>` +
      (ctx.smartHttp ? `; git fetches from ${escapeHtml(`${ctx.origin}${GIT_PREFIX}/`)}&lt;repository&gt;` : '; smart HTTP git is not enabled on this server') +
      '.</p>';
  const problems = catalog.problems.length
    ? `<p>Manifest entries not shown:</p><ul>${catalog.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul>`
    : '';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>bundlemirror</title>',
    `<style>${STYLE}</style>`,
    '</head><body>',
    '<h1>bundlemirror</h1>',
    intro,
    ...catalog.repos.map((r) => renderRepo(r, ctx)),
    problems,
    '</body></html>',
    '',
  ].join('\n');
}

export function pageHandler(opts: { catalog: () => Promise<Catalog>; smartHttp: boolean; publishedTree: boolean }) {
  return async function servePage(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctx = { origin: requestOrigin(req), smartHttp: opts.smartHttp, publishedTree: opts.publishedTree };
    const html = renderPage(await opts.catalog(), ctx);
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(html));
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
    res.end(req.method === 'HEAD' ? undefined : html);
  };
}
