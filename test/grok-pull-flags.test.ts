import test from 'ava';
import { rm, stat, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fingerprintOf, pull, pullReport, replicaFor, startOrigin } from './support/mirror.js';
import { runCli } from './support/cli.js';
import type { ReplicaStatus } from '../src/replica/status.js';

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

test("-n looks at every entry of an unchanged manifest: a repository deleted behind the replica's back comes back", async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const beta = join(toplevel, 'pub/sub/beta.git');
  await rm(beta, { recursive: true });
  const plain = await pull(config);
  t.is(plain.code, 0, plain.stderr);
  t.false(await exists(beta), 'an unchanged manifest costs one request and looks no further');
  const n = await pull(config, '-n');
  t.is(n.code, 0, n.stderr);
  t.true(await exists(join(beta, 'HEAD')), '-n cloned it again');
});

test('-p purges repositories gone from the manifest though [pull] purge is off', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin, 'replica', 'purgeprotect = 90\n');
  t.is((await pull(config)).code, 0);
  await rm(join(origin.toplevel, 'pub/sub/beta.git'), { recursive: true });
  await origin.publish();
  t.is((await pull(config)).code, 0);
  t.true(await exists(join(toplevel, 'pub/sub/beta.git')), 'purge is off in the config');
  const r = await pull(config, '-p');
  t.is(r.code, 0, r.stderr);
  t.false(await exists(join(toplevel, 'pub/sub/beta.git')), '-p purged it');
  t.true(await exists(join(toplevel, 'pub/alpha.git/HEAD')));
});

test('-o without [pull] refresh runs once and exits, as grok-pull does', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  const r = await pull(config, '-o', '-v');
  t.is(r.code, 0, r.stderr);
  t.true(await exists(join(toplevel, 'pub/alpha.git/HEAD')));
});

test('grok-pull 1 flags without an equivalent are refused with exit 2 before anything is written', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  for (const flags of [['-y'], ['-r'], ['-m'], ['-s', '/pub/*'], ['-l', '/tmp/x.log']]) {
    const r = await pull(config, ...flags);
    t.is(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /E_USAGE/);
  }
  t.false(await exists(join(toplevel, 'pub')), 'nothing was mirrored');
});

test('--config-check: exit 0 for a usable config, 2 with the section and key for a misspelled one', async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  const ok = await pull(config, '--config-check');
  t.is(ok.code, 0, ok.stderr);
  t.false(await exists(join(toplevel, 'pub')), 'a check mirrors nothing');
  await writeFile(config, (await readFile(config, 'utf8')).replace('[pull]\n', '[pull]\ninculde = /pub/alpha.git\n'));
  const bad = await pull(config, '--config-check');
  t.is(bad.code, 2, bad.stderr);
  t.regex(bad.stderr, /E_CONFIG/);
  t.regex(bad.stderr, /\[pull\] inculde/);
  t.regex(bad.stderr, /include/);
});

test("a repository deleted behind the replica's back while the manifest changes elsewhere: status names it, and it comes back when its own entry changes", async (t) => {
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  const beta = join(toplevel, 'pub/sub/beta.git');
  await rm(beta, { recursive: true });
  // another repository changes: the changed manifest is acted on, but beta's entry and recorded state still agree
  await origin.repos['/pub/alpha.git']!.wt.commit('elsewhere');
  await origin.repos['/pub/alpha.git']!.wt.push('main');
  await origin.publish();
  const elsewhere = await pullReport(config);
  t.is(elsewhere.code, 0, elsewhere.stderr);
  t.deepEqual(
    elsewhere.report.repos.map((r) => [r.path, r.action]),
    [['/pub/alpha.git', 'updated']],
  );
  t.false(await exists(beta), 'a repository whose entry and state agree is not looked for on disk');
  const status = await runCli(['status', '-c', config, '--json']);
  const missing = (JSON.parse(status.stdout) as ReplicaStatus).repos.find((r) => r.path === '/pub/sub/beta.git');
  t.is(missing?.state, 'not-cloned', 'status looks at every repository');
  // its own entry changes: now it is looked for, found missing and cloned
  await origin.repos['/pub/sub/beta.git']!.wt.commit('here');
  await origin.repos['/pub/sub/beta.git']!.wt.push('main');
  await origin.publish();
  const own = await pullReport(config);
  t.is(own.code, 0, own.stderr);
  t.deepEqual(
    own.report.repos.map((r) => [r.path, r.action]),
    [['/pub/sub/beta.git', 'cloned']],
  );
  t.is(await fingerprintOf(beta), await fingerprintOf(origin.repos['/pub/sub/beta.git']!.bare));
});
