/**
 * The pages `serve` shows to people, over real HTTP on 127.0.0.1: the list
 * at `/` with its summary, search and paging for thousands of repositories,
 * the page of one repository at the URL `bundlemirror clone` takes, and
 * (in a real headless Chromium) a layout where commands wrap on a narrow
 * screen and a search form that works without JavaScript.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeManifestFile, type Manifest } from '../src/manifest/manifest.js';
import { repoIndexSchemas, serializeRepoIndex } from '../src/manifest/repo-index.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { PAGE_SIZE } from '../src/server/page.js';
import { tempDir } from './support/repos.js';
import { request } from './support/http.js';

const COUNT = 2500;
const EVIL = 'tools <script>alert("x")</script> & "friends"';
const SPECIAL = '/pub/special.git';
const LONG = `/pub/${'very-long-component-name-'.repeat(4)}project.git`;
const HTML = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

interface Fixture {
  dir: string;
  server: RunningServer;
  url: string;
  cleanup: () => Promise<void>;
}

const oid = (n: number) => n.toString(16).padStart(40, '0');

/**
 * A served tree built by hand: a manifest of COUNT repositories (every tenth
 * described as a "kernel"), and index.json files for two of them, enough for
 * the facts the pages show; no bundle is ever downloaded here.
 */
async function buildTree(): Promise<Fixture> {
  const { dir, cleanup } = await tempDir('bm-page-');
  const manifest: Manifest = {};
  for (let i = 0; i < COUNT; i++) {
    manifest[`/pub/r${String(i).padStart(4, '0')}.git`] = {
      fingerprint: oid(i + 1),
      modified: 1_700_000_000 + i,
      description: i % 10 === 0 ? `kernel number ${i}` : `project ${i}`,
    };
  }
  manifest[SPECIAL] = {
    fingerprint: oid(9999),
    modified: 1_800_000_000,
    description: EVIL,
    owner: 'Ann <ann@example.invalid>',
  };
  manifest[LONG] = {
    fingerprint: oid(9998),
    modified: 1_700_000_000,
    description: 'a path longer than a phone is wide',
  };
  for (const repo of [SPECIAL, LONG]) {
    const repoDir = join(dir, repo);
    await mkdir(repoDir, { recursive: true });
    const refs = { 'refs/heads/main': oid(1), 'refs/heads/dev': oid(2), 'refs/tags/v1': oid(3) };
    const index = repoIndexSchemas().RepoIndexSchema.parse({
      version: 1,
      path: repo,
      generated: new Date().toISOString(),
      fingerprint: oid(5),
      head: 'ref: refs/heads/main',
      refs,
      bundles: [
        {
          uri: `${'a'.repeat(64)}.bundle`,
          sha256: 'a'.repeat(64),
          size: 2048,
          creationToken: 1,
          prerequisites: [],
          tips: refs,
        },
        {
          uri: `${'b'.repeat(64)}.bundle`,
          sha256: 'b'.repeat(64),
          size: 1024,
          creationToken: 2,
          prerequisites: [oid(1)],
          tips: refs,
        },
      ],
    });
    await writeFile(join(repoDir, 'index.json'), serializeRepoIndex(index));
  }
  await writeManifestFile(join(dir, 'manifest.js.gz'), manifest);
  const server = await startServer({ bundles: dir, port: 0, log: false });
  return {
    dir,
    server,
    url: server.url,
    cleanup: async () => {
      await server.close();
      await cleanup();
    },
  };
}

let fixture: Promise<Fixture> | null = null;
const fx = () => (fixture ??= buildTree());
test.after.always(async () => {
  if (fixture) await (await fixture).cleanup();
});

/** Repository paths the list shows, in order. */
function listed(html: string): string[] {
  return [...html.matchAll(/<h2><a href="[^"]*">([^<]*)<\/a><\/h2>/g)].map((m) => m[1]!);
}

async function page(target: string): Promise<string> {
  const r = await request((await fx()).url, target, { headers: HTML });
  if (r.status !== 200) throw new Error(`${target}: ${r.status}`);
  return r.body.toString();
}

test('the list shows a summary and the first page of repositories with a link to the next', async (t) => {
  const html = await page('/');
  t.true(html.includes(`<dt>repositories</dt><dd>${COUNT + 2}</dd>`));
  t.true(html.includes('<dt>bundles</dt><dd>6.0 KiB</dd>'));
  t.true(html.includes('<dt>last change</dt><dd>2027-01-15 08:00 UTC</dd>'));
  const shown = listed(html);
  t.is(shown.length, PAGE_SIZE);
  t.is(shown[0], '/pub/r0000.git');
  t.true(html.includes('<a rel="next" href="/?page=2">'));
  t.false(html.includes('rel="prev"'));
});

test('paging walks the whole list once, and a page past the end shows the last one', async (t) => {
  const seen: string[] = [];
  const pages = Math.ceil((COUNT + 2) / PAGE_SIZE);
  for (let n = 1; n <= pages; n++) {
    const html = await page(`/?page=${n}`);
    seen.push(...listed(html));
    t.is(html.includes('rel="next"'), n < pages, `page ${n}`);
    t.is(html.includes(`rel="prev" href="${n === 2 ? '/' : `/?page=${n - 1}`}"`), n > 1, `page ${n}`);
  }
  t.is(seen.length, COUNT + 2);
  t.is(new Set(seen).size, COUNT + 2);
  t.deepEqual(listed(await page('/?page=999999')), listed(await page(`/?page=${pages}`)));
  t.deepEqual(listed(await page('/?page=-3')), listed(await page('/')));
  t.deepEqual(listed(await page('/?page=abc')), listed(await page('/')));
});

test('search filters by path or description on the server, and paging keeps the search', async (t) => {
  const kernels = await page('/?q=KERNEL');
  const shown = listed(kernels);
  t.is(shown.length, PAGE_SIZE);
  t.true(
    shown.every((p) => Number(/r(\d+)/.exec(p)![1]) % 10 === 0),
    shown.join(' '),
  );
  t.true(kernels.includes('<a rel="next" href="/?q=KERNEL&#38;page=2">'));
  t.true(kernels.includes('<input type="search" name="q" value="KERNEL"'));
  const second = listed(await page('/?q=KERNEL&page=3'));
  t.is(second.length, COUNT / 10 - 2 * PAGE_SIZE);
  t.deepEqual(listed(await page('/?q=r0042')), ['/pub/r0042.git']);
  t.deepEqual(listed(await page('/?q=')).length, PAGE_SIZE);
  t.deepEqual(listed(await page('/?q=no-such-thing')), []);
});

test('search terms and descriptions are escaped everywhere they appear', async (t) => {
  const q = '"><script>alert(1)</script>';
  const html = await page(`/?q=${encodeURIComponent(q)}`);
  t.false(html.includes('<script>'));
  t.true(html.includes('value="&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;"'));
  const special = await page('/?q=friends');
  t.deepEqual(listed(special), [SPECIAL]);
  t.false(special.includes('<script>'));
  t.true(special.includes('tools &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#34;friends&#34;'));
});

test('a browser at the URL given to clone gets the repository page; other clients get what they got before', async (t) => {
  const { url } = await fx();
  for (const target of [SPECIAL, `${SPECIAL}/`]) {
    const r = await request(url, target, { headers: HTML });
    t.is(r.status, 200, target);
    t.is(r.headers['content-type'], 'text/html; charset=utf-8');
    t.is(r.headers['content-security-policy'], "default-src 'none'; style-src 'unsafe-inline'");
    const html = r.body.toString();
    t.false(html.includes('<script>'));
    t.true(html.includes('<h1>/pub/special.git</h1>'));
    t.true(html.includes('tools &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;'));
    t.true(html.includes('<dt>owner</dt><dd>Ann &#60;ann@example.invalid&#62;</dd>'));
    t.true(html.includes('<dt>refs</dt><dd>3</dd>'));
    t.true(html.includes('<dt>bundles</dt><dd>2 (3.0 KiB)</dd>'));
    t.true(html.includes('<dt>last change</dt><dd>2027-01-15 08:00 UTC</dd>'));
    t.true(html.includes(`bundlemirror clone ${url}/pub/special.git special`));
  }
  // no text/html in Accept (curl, the clone command, replicas): the published tree as before
  t.is((await request(url, SPECIAL)).status, 404);
  t.is((await request(url, SPECIAL, { headers: { accept: '*/*' } })).status, 404);
  const index = await request(url, `${SPECIAL}/index.json`, { headers: HTML });
  t.is(index.status, 200);
  t.is(JSON.parse(index.body.toString()).path, SPECIAL);
  // names no repository of the manifest
  t.is((await request(url, '/pub/absent.git', { headers: HTML })).status, 404);
  t.is(
    (await request(url, '/pub/%E0%A4%A.git', { headers: HTML })).status,
    (await request(url, '/pub/%E0%A4%A.git')).status,
  );
});

// ---------------------------------------------------------------- in a real browser

function chromium(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'chromium',
      ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', ...args],
      { timeout: 60_000, maxBuffer: 64 << 20 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });
}

const haveChromium = chromium(['--version']).then(
  () => true,
  () => false,
);

/**
 * How wide the page is laid out in a 400 px frame: the page (as served,
 * plus a script that reports to the frame's parent) is loaded from a file
 * into an iframe of that width; headless Chromium will not make its window
 * narrower than 500 px.
 */
async function widthAt400(dir: string, name: string, html: string): Promise<{ scroll: number; viewport: number }> {
  const probe =
    '<script>parent.document.body.setAttribute("data-measure", ' +
    'document.documentElement.scrollWidth + " " + document.documentElement.clientWidth);</script>';
  await writeFile(join(dir, `${name}.html`), html.replace('</body>', `${probe}</body>`));
  const frame = join(dir, `${name}-frame.html`);
  await writeFile(
    frame,
    `<!doctype html><body style="margin:0"><iframe src="${name}.html" style="border:0;width:400px;height:900px"></iframe></body>`,
  );
  const dom = await chromium([
    '--allow-file-access-from-files',
    '--window-size=400,900',
    '--dump-dom',
    pathToFileURL(frame).href,
  ]);
  const m = /data-measure="(\d+) (\d+)"/.exec(dom);
  if (!m) throw new Error(`no measurement in ${dom.slice(0, 500)}`);
  return { scroll: Number(m[1]), viewport: Number(m[2]) };
}

test.serial('in Chromium at 400 px wide, commands wrap instead of making the page scroll sideways', async (t) => {
  if (!(await haveChromium)) return t.log('SKIPPED: chromium is not installed (apt-get install chromium)');
  const { url } = await fx();
  const { dir, cleanup } = await tempDir('bm-page-browser-');
  try {
    for (const [name, target] of [
      ['list', `/?q=${encodeURIComponent('very-long')}`],
      ['repo', `${LONG}/`],
    ] as const) {
      const html = (await request(url, target, { headers: HTML })).body.toString();
      t.true(html.includes('bundlemirror clone'), name);
      const wrapped = await widthAt400(dir, name, html);
      t.is(wrapped.viewport, 400, name);
      t.true(wrapped.scroll <= wrapped.viewport, `${name}: ${wrapped.scroll} px wide in ${wrapped.viewport}`);
      // the same page without the wrapping rules does overflow, so the measurement above means something
      const unwrapped = await widthAt400(
        dir,
        `${name}-nowrap`,
        html.replace('white-space:pre-wrap;overflow-wrap:anywhere', ''),
      );
      t.true(
        unwrapped.scroll > unwrapped.viewport,
        `${name} without wrapping: ${unwrapped.scroll} px wide in ${unwrapped.viewport}`,
      );
    }
    const shot = join(dir, 'repo.png');
    await chromium(['--window-size=400,900', `--screenshot=${shot}`, `${url}${LONG}/`]);
    const png = await readFile(shot);
    t.is(png.subarray(1, 4).toString(), 'PNG');
    t.is(png.readUInt32BE(16), 400);
  } finally {
    await cleanup();
  }
});

test.serial('in Chromium, submitting the search form shows the matching repositories', async (t) => {
  if (!(await haveChromium)) return t.log('SKIPPED: chromium is not installed (apt-get install chromium)');
  const { url } = await fx();
  const { dir, cleanup } = await tempDir('bm-page-browser-');
  try {
    // the served page forbids scripts; a copy with the server as its base types into the form and submits it
    const html = (await request(url, '/', { headers: HTML })).body.toString();
    const typing =
      '<script>const f = document.querySelector("form"); f.querySelector("input[name=q]").value = "r0042"; f.submit();</script>';
    const file = join(dir, 'search.html');
    await writeFile(file, html.replace('<head>', `<head><base href="${url}/">`).replace('</body>', `${typing}</body>`));
    const dom = await chromium([
      '--window-size=400,900',
      '--virtual-time-budget=10000',
      '--dump-dom',
      pathToFileURL(file).href,
    ]);
    t.deepEqual(listed(dom), ['/pub/r0042.git'], dom.slice(0, 2000));
    t.true(dom.includes('value="r0042"'));
  } finally {
    await cleanup();
  }
});
