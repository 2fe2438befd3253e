import test from 'ava';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { showRefOf } from './support/repos.js';
import { spawnGitDaemon } from './support/listener.js';
import { NGINX, startNginx } from './support/nginx.js';
import { pullReport, startOrigin, writeConfig } from './support/mirror.js';
import { repoIn } from './support/reports.js';

const nginxTest = NGINX ? test : test.skip;
if (!NGINX)
  console.log('static-hosting.test.ts: SKIPPED: nginx is not installed (apt-get install nginx; .ci/run does this)');

nginxTest('pull works from a tree hosted by nginx, with git fetches going to a git:// daemon', async (t) => {
  const origin = await startOrigin(t);
  const nginx = await startNginx(origin.out, join(origin.dir, 'nginx'));
  t.teardown(() => nginx.stop());
  const { child: daemon, port: gitPort } = await spawnGitDaemon(origin.toplevel);
  t.teardown(() => void daemon.kill());

  const toplevel = join(origin.dir, 'replica');
  const config = await writeConfig(origin.dir, {
    toplevel,
    manifest: `${nginx.url}/manifest.js.gz`,
    site: `git://127.0.0.1:${gitPort}`,
  });
  const first = await pullReport(config);
  t.is(first.code, 0, first.stderr);
  t.like(first.report.counts, { cloned: 3 });

  // alpha changes through an incremental bundle from nginx; beta's index is missing, so it must come over git://
  const alpha = origin.repos['/pub/alpha.git']!;
  await alpha.wt.commit('one more');
  await alpha.wt.push('main');
  const beta = origin.repos['/pub/sub/beta.git']!;
  await beta.wt.commit('beta too');
  await beta.wt.push('main');
  await origin.publish();
  await rm(join(origin.out, 'pub/sub/beta.git/index.json'));
  const second = await pullReport(config);
  t.is(second.code, 0, second.stderr);
  t.like(second.report.counts, { updated: 2 });
  t.like(repoIn(second.report, '/pub/alpha.git'), { action: 'updated', via: 'bundles' });
  t.like(repoIn(second.report, '/pub/sub/beta.git'), { action: 'updated', via: 'fetch' });
  for (const p of ['/pub/alpha.git', '/pub/sub/beta.git', '/pub/forks/alpha-fork.git']) {
    t.is(await showRefOf(join(toplevel, p)), await showRefOf(join(origin.toplevel, p)), p);
  }
  const again = await pullReport(config);
  t.true(again.report.manifest.unchanged, 'nginx answers 304 to the conditional GET');
});
