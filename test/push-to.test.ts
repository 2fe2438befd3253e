/**
 * `serve --push-to URL`: a push to a replica lands on the master (git
 * follows the 307 on the first request of the push), and comes back to the
 * replica with the next publish and pull. Without `--push-to` a push is
 * refused and the master is untouched.
 */
import test from 'ava';
import { join } from 'node:path';
import { git, gitText } from '../src/git/exec.js';
import { BundlemirrorError } from '../src/errors.js';
import { startServer } from '../src/server/server.js';
import { request } from './support/http.js';
import { pull, replicaFor, startOrigin } from './support/mirror.js';
import { startPushMaster } from './support/push-master.js';
import { WorkTree } from './support/repos.js';

const main = (gitDir: string) => gitText(['rev-parse', 'refs/heads/main'], { gitDir });

test('a push to a replica started with --push-to lands on the master and comes back with publish and pull', async (t) => {
  const origin = await startOrigin(t);
  const master = await startPushMaster(origin.toplevel);
  t.teardown(() => master.close());
  const { config, toplevel: replicaTop } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);

  const logs: string[] = [];
  const replica = await startServer({ toplevel: replicaTop, port: 0, log: (l) => logs.push(l), pushTo: master.url });
  t.teardown(() => replica.close());

  // a developer clones from the replica near them, commits, and pushes back to it
  const dev = await WorkTree.create(origin.dir, `${replica.url}/git/pub/alpha.git`);
  await dev.run(['fetch', '--quiet', 'origin']);
  await dev.run(['checkout', '--quiet', '-B', 'main', 'origin/main']);
  const pushed = await dev.commit('work done near the replica');
  await dev.run(['push', '--quiet', 'origin', 'main']);

  const originBare = origin.repos['/pub/alpha.git']!.bare;
  t.is(await main(originBare), pushed, 'the push landed on the master');
  t.true(
    logs.some((l) => / GET \/git\/pub\/alpha\.git\/info\/refs\?service=git-receive-pack 307 /.test(l)),
    logs.join('\n'),
  );
  t.false(
    logs.some((l) => /POST \/git\/pub\/alpha\.git\/git-receive-pack/.test(l)),
    'the pack went to the master, not the replica',
  );
  t.true(
    master.requests.some((r) => r.startsWith('POST /git/pub/alpha.git/git-receive-pack 200')),
    master.requests.join('\n'),
  );
  const replicaBare = join(replicaTop, 'pub', 'alpha.git');
  t.not(await main(replicaBare), pushed, 'the replica itself took nothing');

  await origin.publish();
  t.is((await pull(config)).code, 0);
  t.is(await main(replicaBare), pushed, 'back on the replica after publish and pull');

  // a receive-pack POST that reaches the replica anyway is sent to the same path on the master
  const post = await request(replica.url, '/git/pub/alpha.git/git-receive-pack', {
    method: 'POST',
    body: '0000',
    headers: { 'Content-Type': 'application/x-git-receive-pack-request' },
  });
  t.is(post.status, 307);
  t.is(post.headers.location, `${master.url}/git/pub/alpha.git/git-receive-pack`);
  // a repository the replica does not serve is not redirected
  t.is((await request(replica.url, '/git/pub/private.git/info/refs?service=git-receive-pack')).status, 404);
});

test('without --push-to a push to a replica is refused with 403 and the master is untouched', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel: replicaTop } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const replica = await startServer({ toplevel: replicaTop, port: 0, log: false });
  t.teardown(() => replica.close());

  const originBare = origin.repos['/pub/alpha.git']!.bare;
  const before = await main(originBare);
  const dev = await WorkTree.create(origin.dir, `${replica.url}/git/pub/alpha.git`);
  await dev.run(['fetch', '--quiet', 'origin']);
  await dev.run(['checkout', '--quiet', '-B', 'main', 'origin/main']);
  await dev.commit('refused');
  const err = await t.throwsAsync(dev.run(['push', 'origin', 'main']));
  t.regex(err!.message, /403/);
  t.is(await main(originBare), before);
  for (const [method, target] of [
    ['GET', '/git/pub/alpha.git/info/refs?service=git-receive-pack'],
    ['POST', '/git/pub/alpha.git/git-receive-pack'],
  ] as const) {
    const r = await request(replica.url, target, { method, body: method === 'POST' ? '0000' : undefined });
    t.is(r.status, 403, target);
    t.is(r.headers.location, undefined);
  }
  // the refusal says where to push when the repository names its master
  await git(['config', 'bundlemirror.master', 'http://master.example/git/pub/alpha.git'], {
    gitDir: join(replicaTop, 'pub', 'alpha.git'),
  });
  const named = await request(replica.url, '/git/pub/alpha.git/info/refs?service=git-receive-pack');
  t.true(named.body.toString().includes('http://master.example/git/pub/alpha.git'));
});

test('--push-to must be a plain http(s) base URL', async (t) => {
  const origin = await startOrigin(t, { serve: false });
  for (const bad of [
    'ftp://master.example',
    'http://user:secret@master.example',
    'http://master.example/?x=1',
    'master.example',
  ]) {
    const err = await t.throwsAsync(
      startServer({ bundles: origin.out, toplevel: origin.toplevel, port: 0, log: false, pushTo: bad }),
      { instanceOf: BundlemirrorError },
      bad,
    );
    t.is((err as BundlemirrorError).code, 'E_CONFIG', bad);
  }
});
