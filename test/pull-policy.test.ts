import test from 'ava';
import { readFile, rm, stat, writeFile, chmod, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { symlink } from 'node:fs/promises';
import { makeRepo } from './support/repos.js';
import { pull, pullReport, replicaFor, startOrigin } from './support/mirror.js';

test('include/exclude globs select repositories; a new repository matching the glob is picked up', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin, 'replica', 'include = /pub/*\nexclude = /pub/forks/*\n');
  const r = await pullReport(config);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { cloned: 2 });
  await t.throwsAsync(stat(join(toplevel, 'pub/forks/alpha-fork.git')));
  await makeRepo(origin.dir, origin.toplevel, 'pub/gamma.git');
  await origin.publish();
  const r2 = await pullReport(config);
  t.is(r2.code, 0, r2.stderr);
  t.like(r2.report.counts, { cloned: 1, updated: 0, unchanged: 2 });
  t.deepEqual(
    r2.report.repos.map((r) => [r.path, r.action]),
    [['/pub/gamma.git', 'cloned']],
  );
  t.truthy(await stat(join(toplevel, 'pub/gamma.git/HEAD')));
});

test('purge removes repositories gone from the manifest only when enabled, and never above purgeprotect', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin, 'replica', 'purge = yes\npurgeprotect = 50\n');
  t.is((await pull(config)).code, 0);
  await rm(join(origin.toplevel, 'pub/sub/beta.git'), { recursive: true });
  await origin.publish();
  const off = await pull(config, '--no-purge');
  t.is(off.code, 0, off.stderr);
  t.truthy(await stat(join(toplevel, 'pub/sub/beta.git')), '--no-purge keeps it');
  const r = await pullReport(config);
  t.is(r.code, 0, r.stderr);
  t.like(r.report.counts, { purged: 1 });
  t.deepEqual(
    r.report.repos.map((r) => [r.path, r.action]),
    [['/pub/sub/beta.git', 'purged']],
  );
  await t.throwsAsync(stat(join(toplevel, 'pub/sub/beta.git')));

  // losing two of the remaining three (66% > 50%) is refused without --force-purge
  await rm(join(origin.toplevel, 'pub/alpha.git'), { recursive: true });
  await rm(join(origin.toplevel, 'pub/forks/alpha-fork.git'), { recursive: true });
  await makeRepo(origin.dir, origin.toplevel, 'pub/other.git');
  await origin.publish();
  const blocked = await pull(config);
  t.is(blocked.code, 1);
  t.regex(blocked.stderr, /--force-purge/);
  t.truthy(await stat(join(toplevel, 'pub/alpha.git')));
  const forced = await pull(config, '--force-purge');
  t.is(forced.code, 0, forced.stderr);
  await t.throwsAsync(stat(join(toplevel, 'pub/alpha.git')));
});

test('hooks run as grokmirror runs them: post_update per repository, clone and work-complete once', async (t) => {
  const origin = await startOrigin(t);
  const logFile = join(origin.dir, 'hooks.log');
  const script = join(origin.dir, 'hook.sh');
  await writeFile(script, `#!/bin/sh\necho "$0 $* $(cat)" >> ${logFile}\n`);
  await chmod(script, 0o755);
  const { config } = await replicaFor(
    origin,
    'replica',
    `post_update_hook = ${script} update\npost_clone_complete_hook = ${script} cloned\npost_work_complete_hook = ${script} done\n`,
  );
  t.is((await pull(config)).code, 0);
  const text = await readFile(logFile, 'utf8');
  const lines = text.trim().split('\n');
  t.is(lines.filter((l) => l.includes(' update ')).length, 3);
  t.is(lines.filter((l) => l.includes(' cloned')).length, 1);
  // the new clones' full paths arrive on stdin, one per line
  t.regex(
    text,
    /cloned \S+\/replica\/pub\/alpha\.git\n\S+\/replica\/pub\/forks\/alpha-fork\.git\n\S+\/replica\/pub\/sub\/beta\.git\n/,
  );
  t.is(lines.filter((l) => l.includes(' done')).length, 1);
  await writeFile(logFile, '');
  t.is((await pull(config, '--force')).code, 0);
  t.is((await readFile(logFile, 'utf8')).trim(), '', 'nothing changed, no hook ran');
});

test('symlinks listed in the manifest are created on the replica, and projects.list is written', async (t) => {
  const origin = await startOrigin(t);
  await symlink(join(origin.toplevel, 'pub/alpha.git'), join(origin.toplevel, 'pub/alias.git'));
  await origin.publish();
  const projects = join(origin.dir, 'projects.list');
  const { config, toplevel } = await replicaFor(
    origin,
    'replica',
    `projectslist = ${projects}\nprojectslist_trimtop = /pub/\n`,
  );
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  t.is(await readlink(join(toplevel, 'pub/alias.git')), 'alpha.git');
  t.is(await readFile(projects, 'utf8'), 'alpha.git\nforks/alpha-fork.git\nsub/beta.git\n');
});
