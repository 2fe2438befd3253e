/**
 * The remote manifest is not there: over HTTP, and in a `file:` tree that
 * lacks it, holds something else under its name, or is not mounted. Each
 * is E_NOT_FOUND (exit 1) naming the manifest's URL (and the tree), with
 * what to do; the `file:` cases keep the tree's own reason, so each says
 * something different to do.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isBundlemirrorError, type BundlemirrorError } from '../src/errors.js';
import { serializeManifest } from '../src/manifest/manifest.js';
import { loadPullConfig } from '../src/replica/config/config.js';
import { createPullLog } from '../src/replica/log.js';
import { pull } from '../src/replica/pull.js';
import { runCli } from './support/cli.js';
import { writeConfig } from './support/mirror.js';
import { tempDir } from './support/repos.js';
import { startServer } from '../src/server/server.js';

/** A published tree with no manifest in it yet (the origin has not published into it). */
async function emptyTree(t: ExecutionContext) {
  const { dir, cleanup } = await tempDir('bm-nomanifest-');
  t.teardown(cleanup);
  const tree = join(dir, 'published');
  await mkdir(join(tree, 'pub', 'a.git'), { recursive: true });
  await writeFile(join(tree, 'pub', 'a.git', 'index.json'), '{}');
  return { dir, tree };
}

/** The error a pull of `manifest` ends with, in process. */
async function pullFails(
  t: ExecutionContext,
  dir: string,
  name: string,
  site: string,
  manifest: string,
): Promise<BundlemirrorError & { config: string }> {
  const config = await writeConfig(dir, { toplevel: join(dir, name), site, manifest, name: `${name}.conf` });
  const parsed = loadPullConfig(config);
  const log = createPullLog({ file: join(dir, `${name}.log`), level: 'info', console: 'quiet' });
  const err = await t.throwsAsync(pull(parsed, { log }));
  t.true(isBundlemirrorError(err), String(err));
  return Object.assign(err as BundlemirrorError, { config });
}

test('a manifest the origin does not serve over HTTP: E_NOT_FOUND naming the URL and what to do, exit 1', async (t) => {
  const e = await emptyTree(t);
  // serve needs a published tree: the replica's URL names a place the origin never published to
  await writeFile(join(e.tree, 'manifest.js.gz'), serializeManifest({}));
  const origin = join(e.dir, 'origin');
  await mkdir(origin);
  const server = await startServer({ bundles: e.tree, toplevel: origin, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${server.port}`;
  const manifest = `${url}/pub/manifest.js.gz`;
  const err = await pullFails(t, e.dir, 'http', `${url}/git`, manifest);
  t.is(err.code, 'E_NOT_FOUND');
  t.true(err.message.includes(manifest), err.message);
  t.true(!!err.hint?.includes(err.config), 'the hint names the config to check');

  const cli = await runCli(['pull', '-c', err.config, '--no-progress']);
  t.is(cli.code, 1, cli.stderr);
  t.true(cli.stderr.includes('[E_NOT_FOUND]'), cli.stderr);
  t.true(cli.stderr.includes(manifest), cli.stderr);
  const status = await runCli(['status', '-c', err.config, '--fetch']);
  t.is(status.code, 1, status.stderr);
  t.true(status.stderr.includes('[E_NOT_FOUND]') && status.stderr.includes(manifest), status.stderr);
});

test('a file: manifest that is missing, not a regular file, or in a tree that is not mounted: E_NOT_FOUND naming the URL and the tree, each with its own advice', async (t) => {
  const e = await emptyTree(t);
  const site = pathToFileURL(e.tree).href;

  const missing = await pullFails(t, e.dir, 'missing', site, `${site}/manifest.js.gz`);
  // a directory where the manifest should be
  const directory = await pullFails(t, e.dir, 'directory', site, `${site}/pub/a.git`);
  const gone = join(e.dir, 'tree-not-mounted');
  const goneSite = pathToFileURL(gone).href;
  const unmounted = await pullFails(t, e.dir, 'unmounted', goneSite, `${goneSite}/manifest.js.gz`);

  for (const [err, url, tree] of [
    [missing, `${site}/manifest.js.gz`, e.tree],
    [directory, `${site}/pub/a.git`, null],
    [unmounted, `${goneSite}/manifest.js.gz`, gone],
  ] as const) {
    t.is(err.code, 'E_NOT_FOUND');
    t.true(err.message.includes(url), err.message);
    if (tree) t.true(err.message.includes(tree), err.message);
    t.truthy(err.hint);
  }
  const advice = (err: BundlemirrorError & { config: string }) => err.hint!.split(err.config).join('CONFIG');
  t.is(new Set([missing, directory, unmounted].map(advice)).size, 3, 'what to do differs with the reason');

  const cli = await runCli(['pull', '-c', unmounted.config, '--no-progress']);
  t.is(cli.code, 1, cli.stderr);
  t.true(cli.stderr.includes('[E_NOT_FOUND]') && cli.stderr.includes(gone), cli.stderr);
});
