/**
 * `/on-demand`: the service for a person. Paste a repository URL, watch
 * the service clone and bundle it, then copy the commands (or download the
 * bundles). One fixed script, allowed by its hash in the CSP; everything it
 * shows from the API goes in through textContent, never as HTML.
 * `/on-demand?url=...` fills in the URL and starts at once, so the page can
 * be linked to.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { methodNotAllowed, sendBody } from '../reply.js';
import { API_PATH } from './api.js';

export const PAGE_PATH = '/on-demand';

const SCRIPT = `
const form = document.getElementById('ask');
const input = document.getElementById('url');
const state = document.getElementById('state');
const detail = document.getElementById('detail');
const ready = document.getElementById('ready');
const commands = document.getElementById('commands');
const links = document.getElementById('links');
let timer = null;
function show(job) {
  state.textContent = job.state;
  const p = job.progress;
  detail.textContent = job.error ? job.error.code + ': ' + job.error.message
    : p ? p.phase + (p.percent !== null ? ' ' + p.percent + '%' : '') + (p.total ? ' (' + p.done + '/' + p.total + ')' : '')
      + (p.bytes !== null ? ', ' + (p.bytes / 1048576).toFixed(1) + ' MiB' : '') : '';
  ready.hidden = job.state !== 'ready';
  if (job.state === 'ready') {
    commands.textContent = job.commands.bundlemirror + '\\n' + job.commands.git;
    links.replaceChildren();
    for (const [label, href] of [['bundle-list', job.bundleList], ['index.json', job.index], ...job.bundles.map((b) => [b.url.split('/').pop() + ' (' + b.size + ' bytes)', b.url])]) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = href;
      a.textContent = label;
      li.append(a);
      links.append(li);
    }
  }
}
async function ask(method, url) {
  const res = await fetch(method === 'POST' ? '${API_PATH}' : '${API_PATH}?url=' + encodeURIComponent(url),
    method === 'POST' ? { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url }) } : {});
  const body = await res.json();
  if (body.error && !body.state) { state.textContent = 'refused'; detail.textContent = body.error.code + ': ' + body.error.message; ready.hidden = true; return; }
  show(body);
  if (res.status === 202) timer = setTimeout(() => ask('GET', url), 1000 * Number(res.headers.get('retry-after') || 1));
}
form.addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(timer);
  state.textContent = 'asking';
  detail.textContent = '';
  ask('POST', input.value.trim()).catch((err) => { state.textContent = 'error'; detail.textContent = String(err); });
});
const given = new URLSearchParams(location.search).get('url');
if (given) { input.value = given; form.requestSubmit(); }
`;

const SCRIPT_HASH = createHash('sha256').update(SCRIPT).digest('base64');

const STYLE = `body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4;color:#222}
input[type=url]{width:70%;padding:.3rem}pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}#state{font-weight:bold}`;

function renderOnDemandPage(allow: readonly string[]): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>bundlemirror: bundles on demand</title>',
    `<style>${STYLE}</style>`,
    '</head><body>',
    '<h1>Bundles on demand</h1>',
    '<p>Paste the URL of a public git repository. This service clones it, makes a bundle you can download at your own pace ' +
      '(resumable, over plain HTTP), and tells you how to turn it into a clone whose <code>origin</code> is the repository itself.</p>',
    `<p>Allowed here: ${allow.map((a) => `<code>${esc(a)}</code>`).join(', ')}</p>`,
    '<form id="ask"><input id="url" type="url" required placeholder="https://example.org/project.git"> <button>Get bundles</button></form>',
    '<p>State: <span id="state">-</span> <span id="detail"></span></p>',
    '<div id="ready" hidden><h2>Ready</h2><p>Run one of:</p><pre id="commands"></pre><p>Files:</p><ul id="links"></ul></div>',
    `<script>${SCRIPT}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}

export function onDemandPageHandler(allow: readonly string[]) {
  const html = renderOnDemandPage(allow);
  return function servePage(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, ['GET', 'HEAD']);
    sendBody(req, res, 200, 'text/html; charset=utf-8', html, {
      'Cache-Control': 'no-cache',
      'Content-Security-Policy': `default-src 'none'; script-src 'sha256-${SCRIPT_HASH}'; connect-src 'self'; style-src 'unsafe-inline'`,
    });
  };
}
