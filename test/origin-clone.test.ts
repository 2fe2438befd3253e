import test from 'ava';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import { startServer } from '../src/server/server.js';
import { makeRepo, makeFork, showRefOf, tempDir } from './support/repos.js';
import { runCli } from './support/cli.js';

test('stock `git clone --bundle-uri` from a served tree gets every ref of the origin, using the bundles', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const alpha = await makeRepo(dir, toplevel, 'pub/alpha.git', { commits: 5 });
  await makeFork(dir, toplevel, alpha.bare, 'pub/forks/alpha-fork.git');
  const first = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet']);
  t.is(first.code, 0, first.stderr);
  // an incremental on top, so the list has a chain for git to apply in order
  await alpha.wt.commit('after publish');
  await alpha.wt.push('main');
  const second = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet']);
  t.is(second.code, 0, second.stderr);

  const lines: string[] = [];
  const server = await startServer({ bundles: out, toplevel, host: '127.0.0.1', port: 0, log: (l) => lines.push(l) });
  t.teardown(() => server.close());
  const clone = join(dir, 'clone.git');
  await git([
    'clone',
    '--quiet',
    '--mirror',
    `--bundle-uri=${server.url}/pub/alpha.git/bundle-list`,
    `${server.url}/git/pub/alpha.git`,
    clone,
  ]);
  // git 2.39 also keeps what it unbundled under refs/bundles/*; everything else must be the origin's
  const cloned = (await showRefOf(clone))
    .split('\n')
    .filter((l) => !l.includes(' refs/bundles/'))
    .join('\n');
  t.is(cloned, await showRefOf(alpha.bare));
  const bundleGets = lines.filter((l) => /GET \/pub\/alpha\.git\/[0-9a-f]{64}\.bundle 200/.test(l));
  t.is(bundleGets.length, 2, `git downloaded base and incremental:\n${lines.join('\n')}`);
});
