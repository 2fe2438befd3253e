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
import { sendBody } from './reply.js';

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

/** What a repository offers a person: clone commands, best first. */
function commandsFor(r: RepoSummary, ctx: PageContext, cloneUrl: string): string[] {
  const base = `${ctx.origin}${urlPath(r.path)}`;
  const dir = cloneDir(r.path);
  const commands: string[] = [];
  const gitUrl = shellQuote(`${ctx.origin}${GIT_PREFIX}${urlPath(r.path)}`);
  if (ctx.smartHttp && ctx.publishedTree) {
    commands.push(`git clone --bundle-uri=${shellQuote(`${base}/${BUNDLE_LIST_FILE}`)} ${gitUrl} ${shellQuote(dir)}`);
  } else if (ctx.smartHttp) {
    commands.push(`git clone ${gitUrl} ${shellQuote(dir)}`);
  }
  if (ctx.publishedTree) commands.push(`bundlemirror clone ${shellQuote(cloneUrl)} ${shellQuote(dir)}`);
  return commands;
}

function factsOf(r: RepoSummary, ctx: PageContext, withRefs: boolean): [string, string][] {
  const bundles =
    r.bundles === null ? 'index.json missing or unreadable' : `${r.bundles.count} (${formatBytes(r.bundles.size)})`;
  return [
    ['last change', formatModified(r.modified)],
    ...(ctx.publishedTree ? [['bundles', bundles] as [string, string]] : []),
    ...(withRefs && r.refs !== null ? [['refs', String(r.refs)] as [string, string]] : []),
    ...(r.owner ? [['owner', r.owner] as [string, string]] : []),
  ];
}

function renderFacts(facts: [string, string][]): string {
  return `<dl>${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>`;
}

function renderRepo(r: RepoSummary, ctx: PageContext): string {
  const commands = commandsFor(r, ctx, `${ctx.origin}${urlPath(r.path)}/${INDEX_FILE}`);
  const title = `<a href="${escapeHtml(`${urlPath(r.path)}/`)}">${escapeHtml(r.path)}</a>`;
  return [
    '<section>',
    `<h2>${title}</h2>`,
    r.description ? `<p>${escapeHtml(r.description)}</p>` : '',
    renderFacts(factsOf(r, ctx, false)),
    `<pre>${commands.map(escapeHtml).join('\n')}</pre>`,
    '</section>',
  ].join('\n');
}

// commands wrap anywhere rather than scroll sideways: on a phone a scrolled command gets copied half
const STYLE = `body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4;color:#222}
section{border-top:1px solid #ccc;padding:.5rem 0}h2{font-size:1.1rem;margin:.5rem 0}h1,h2,p,dd,li{overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:0 1rem;margin:.5rem 0}dt{color:#666}dd{margin:0}
pre{background:#f4f4f4;padding:.5rem;white-space:pre-wrap;overflow-wrap:anywhere}
form{margin:1rem 0;display:flex;gap:.5rem;flex-wrap:wrap}input[type=search]{flex:1 1 12rem;min-width:0}
nav{margin:1rem 0;display:flex;gap:1rem;flex-wrap:wrap}`;

function document(title: string, body: string[]): string {
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    ...body,
    '</body></html>',
    '',
  ].join('\n');
}

/** Repositories per page: 10,000 on one page is megabytes of HTML nobody scrolls through. */
export const PAGE_SIZE = 100;
/** Longer searches are cut: no path or description worth finding is longer. */
const MAX_QUERY = 200;

export interface PageQuery {
  /** Case-insensitive substring of the path or the description; '' shows all. */
  q: string;
  /** 1-based; past the last page shows the last page. */
  page: number;
}

export function parsePageQuery(target: string): PageQuery {
  const at = target.indexOf('?');
  const params = new URLSearchParams(at < 0 ? '' : target.slice(at + 1));
  const q = (params.get('q') ?? '').trim().slice(0, MAX_QUERY);
  const n = Number(params.get('page') ?? '1');
  return { q, page: Number.isSafeInteger(n) && n >= 1 ? n : 1 };
}

function pageLink(q: string, page: number): string {
  const params = new URLSearchParams();
  if (q) params.set('q', q);
  if (page > 1) params.set('page', String(page));
  const s = params.toString();
  return s ? `/?${s}` : '/';
}

function renderSummary(catalog: Catalog, ctx: PageContext): string {
  const n = catalog.repos.length;
  let size = 0;
  let latest: number | null = null;
  for (const r of catalog.repos) {
    if (r.bundles) size += r.bundles.size;
    if (r.modified !== null && (latest === null || r.modified > latest)) latest = r.modified;
  }
  const facts: [string, string][] = [
    ['repositories', String(n)],
    ...(ctx.publishedTree ? [['bundles', formatBytes(size)] as [string, string]] : []),
    ['last change', formatModified(latest)],
  ];
  return renderFacts(facts);
}

export function renderPage(catalog: Catalog, ctx: PageContext, query: PageQuery = { q: '', page: 1 }): string {
  const intro = !catalog.published
    ? `<p>Nothing is published here yet: there is no ${escapeHtml(MANIFEST_FILE)}.</p>`
    : !ctx.publishedTree
      ? `<p>git fetches from ${escapeHtml(`${ctx.origin}${GIT_PREFIX}/`)}&lt;repository&gt;.</p>`
      : `<p>Replicas poll <a href="/${escapeHtml(MANIFEST_FILE)}">${escapeHtml(MANIFEST_FILE)}</a>` +
        (ctx.smartHttp
          ? `; git fetches from ${escapeHtml(`${ctx.origin}${GIT_PREFIX}/`)}&lt;repository&gt;`
          : '; smart HTTP git is not enabled on this server') +
        '.</p>';
  const problems = catalog.problems.length
    ? `<p>Manifest entries not shown:</p><ul>${catalog.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul>`
    : '';
  if (!catalog.published) return document('bundlemirror', ['<h1>bundlemirror</h1>', intro, problems]);

  const needle = query.q.toLowerCase();
  const matches = needle
    ? catalog.repos.filter(
        (r) => r.path.toLowerCase().includes(needle) || (r.description ?? '').toLowerCase().includes(needle),
      )
    : catalog.repos;
  const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE));
  const page = Math.min(query.page, pages);
  const shown = matches.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
  const first = shown.length ? (page - 1) * PAGE_SIZE + 1 : 0;
  const status =
    `<p id="shown">${needle ? `${matches.length} matching “${escapeHtml(query.q)}”; ` : ''}` +
    `showing ${first}–${first + shown.length - (shown.length ? 1 : 0)} of ${matches.length}, page ${page} of ${pages}.</p>`;
  const links = [
    page > 1 ? `<a rel="prev" href="${escapeHtml(pageLink(query.q, page - 1))}">← previous</a>` : '',
    page < pages ? `<a rel="next" href="${escapeHtml(pageLink(query.q, page + 1))}">next →</a>` : '',
  ].filter(Boolean);
  const nav = links.length ? `<nav>${links.join('')}</nav>` : '';
  const form =
    '<form method="get" action="/" role="search">' +
    `<input type="search" name="q" value="${escapeHtml(query.q)}" placeholder="path or description" aria-label="search">` +
    '<button type="submit">search</button></form>';
  return document('bundlemirror', [
    '<h1>bundlemirror</h1>',
    renderSummary(catalog, ctx),
    intro,
    form,
    status,
    nav,
    ...shown.map((r) => renderRepo(r, ctx)),
    nav,
    problems,
  ]);
}

/** The page for one repository, at the URL people give to `bundlemirror clone`. */
export function renderRepoPage(r: RepoSummary, ctx: PageContext): string {
  const commands = commandsFor(r, ctx, `${ctx.origin}${urlPath(r.path)}`);
  return document(`${r.path} · bundlemirror`, [
    `<p><a href="/">← all repositories</a></p>`,
    `<h1>${escapeHtml(r.path)}</h1>`,
    r.description ? `<p>${escapeHtml(r.description)}</p>` : '',
    renderFacts(factsOf(r, ctx, true)),
    commands.length ? `<pre>${commands.map(escapeHtml).join('\n')}</pre>` : '',
    ctx.publishedTree
      ? `<p><a href="${escapeHtml(`${urlPath(r.path)}/${INDEX_FILE}`)}">${escapeHtml(INDEX_FILE)}</a> · ` +
        `<a href="${escapeHtml(`${urlPath(r.path)}/${BUNDLE_LIST_FILE}`)}">${escapeHtml(BUNDLE_LIST_FILE)}</a></p>`
      : '',
  ]);
}

/** Whether a request comes from a browser: only those get HTML where files are served too. */
export function wantsHtml(req: IncomingMessage): boolean {
  return /\btext\/html\b/i.test(req.headers.accept ?? '');
}

/** The manifest key a request path names (`/pub/a.git` or `/pub/a.git/`), percent-decoded; null if malformed. */
export function repoKeyOf(path: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return null;
  }
  const key = decoded.endsWith('/') ? decoded.slice(0, -1) : decoded;
  return key.startsWith('/') && !key.includes('\0') ? key : null;
}

function sendHtml(req: IncomingMessage, res: ServerResponse, html: string): void {
  sendBody(req, res, 200, 'text/html; charset=utf-8', html, {
    'Cache-Control': 'no-cache',
    Vary: 'Accept',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
}

export interface PageHandler {
  /** The list at `/`. */
  list(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** The page of the repository `path` names; false (nothing sent) when it names none. */
  repo(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
}

export function pageHandler(opts: {
  catalog: () => Promise<Catalog>;
  smartHttp: boolean;
  publishedTree: boolean;
}): PageHandler {
  const context = (req: IncomingMessage): PageContext => ({
    origin: requestOrigin(req),
    smartHttp: opts.smartHttp,
    publishedTree: opts.publishedTree,
  });
  return {
    async list(req, res) {
      sendHtml(req, res, renderPage(await opts.catalog(), context(req), parsePageQuery(req.url ?? '/')));
    },
    async repo(req, res, path) {
      const key = repoKeyOf(path);
      if (key === null) return false;
      const r = (await opts.catalog()).repos.find((x) => x.path === key);
      if (!r) return false;
      sendHtml(req, res, renderRepoPage(r, context(req)));
      return true;
    },
  };
}
