/**
 * A hostile origin against a replica (test/support/attacks.ts builds each
 * attack): nothing outside the toplevel changes, no hook runs, each refusal
 * carries its code and names its repository, and the other repositories
 * sync.
 */
import test from 'ava';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quoteUntrusted } from '../../src/format/untrusted.js';
import type { BundlemirrorError } from '../../src/errors.js';
import { git } from '../../src/git/exec.js';
import { loadPullConfig } from '../../src/replica/config/config.js';
import { memoryLog } from '../../src/replica/log.js';
import { pull } from '../../src/replica/pull.js';
import { runCli } from '../support/cli.js';
import { recordedState } from '../support/state.js';
import {
  attackWorld,
  outputsOfAPull,
  writeStringsAttack,
  HOSTILE_PATHS,
  STRING_REPOS,
  UNSAFE_OUTPUT,
  writeBoundsManifest,
  BOUNDS_REPOS,
  fingerprintsMatch,
  redirectSetup,
  symlinkAttack,
  REDIRECT_REPOS,
  SYMLINK_ATTACKS,
  SYMLINK_ALLOWED,
  SYMLINK_REPOS,
} from '../support/attacks.js';

for (const via of ['http', 'kit'] as const) {
  test(`manifest symlinks that would climb out of the toplevel or into a repository are refused (${via})`, async (t) => {
    const w = await attackWorld(SYMLINK_REPOS);
    t.teardown(() => w.close());
    const outcome = await symlinkAttack(w, via);
    t.deepEqual(outcome.problems, []);
    const expected = Object.entries(SYMLINK_ATTACKS).flatMap(([repo, links]) =>
      links.filter((l) => !SYMLINK_ALLOWED.includes(l)).map((l) => ({ repo, l })),
    );
    for (const { repo, l } of expected) {
      t.true(
        outcome.refused.some((r) => r.code === 'E_SYMLINK' && r.repo === repo && r.what.includes(l)),
        `${l} (of ${repo}) refused with E_SYMLINK`,
      );
    }
    t.true(
      outcome.refused.every((r) => r.code === 'E_SYMLINK'),
      'only symlinks were refused',
    );
  });
}

test('git runs no hook in a mirror and keeps no reflog, even one a mirror already had', async (t) => {
  const w = await attackWorld(['/a.git']);
  t.teardown(() => w.close());
  const pull = async () => {
    const { runCli } = await import('../support/cli.js');
    return runCli(['pull', '-c', w.config, '--no-progress']);
  };
  t.is((await pull()).code, 0);
  const repo = join(w.toplevel, 'a.git');
  // as if made before this protection existed, or by hand: a hook, reflogs on, no hooksPath
  const { writeFile, chmod, readFile } = await import('node:fs/promises');
  await writeFile(join(repo, 'hooks', 'reference-transaction'), `#!/bin/sh\necho "$@" >> '${w.marker}'\n`);
  await chmod(join(repo, 'hooks', 'reference-transaction'), 0o755);
  await git(['config', '--unset', 'core.hooksPath'], { gitDir: repo, okCodes: [5] });
  await git(['config', 'core.logAllRefUpdates', 'true'], { gitDir: repo });
  await w.worktrees['/a.git']!.commit('next');
  await w.worktrees['/a.git']!.push('main');
  const { publish } = await import('../../src/origin/publish.js');
  await publish({ toplevel: w.originTop, out: w.out });
  t.is((await pull()).code, 0);
  t.is(await readFile(w.marker, 'utf8').catch(() => null), null, 'the hook did not run');
  const hooksPath = (await git(['config', '--local', 'core.hooksPath'], { gitDir: repo })).stdout.toString().trim();
  t.is(hooksPath, join(w.toplevel, '.bundlemirror', 'empty-hooks'));
  t.is((await git(['config', '--local', 'core.logAllRefUpdates'], { gitDir: repo })).stdout.toString().trim(), 'false');
  t.is(
    await readFile(join(repo, 'logs', 'refs', 'heads', 'main'), 'utf8').catch(() => null),
    null,
    'no reflog written',
  );
});

test('every hop of a redirect passes the same check as the first URL: index.json to another port and a bundle outside the tree are refused', async (t) => {
  const w = await attackWorld(REDIRECT_REPOS);
  t.teardown(() => w.close());
  const s = await redirectSetup(w);
  t.teardown(() => Promise.all([s.origin.close(), s.other.close()]));
  const report = await pull(loadPullConfig(s.config), { log: memoryLog() });
  t.deepEqual(report.failed.map((e) => [e.repo, e.code]).sort(), [
    ['/b.git', 'E_REDIRECT'],
    ['/c.git', 'E_REDIRECT'],
  ]);
  const b = report.failed.find((e) => e.repo === '/b.git')!;
  t.true(
    b.message.includes(`${s.origin.url}/tree/b.git/index.json`) &&
      b.message.includes(`${s.other.url}/tree/b.git/index.json`),
    'both URLs named',
  );
  t.deepEqual(
    await fingerprintsMatch(w, ['/a.git', '/d.git']),
    [],
    'the redirect inside the tree is followed; the rest sync',
  );
});

test('a redirected manifest is refused unless [bundlemirror] redirects lists where it leads', async (t) => {
  const w = await attackWorld(REDIRECT_REPOS);
  t.teardown(() => w.close());
  const refused = await redirectSetup(w, { manifestElsewhere: true });
  t.teardown(() => Promise.all([refused.origin.close(), refused.other.close()]));
  const err = await t.throwsAsync(pull(loadPullConfig(refused.config), { log: memoryLog() }));
  t.is((err as BundlemirrorError).code, 'E_REDIRECT');
  const allowed = await redirectSetup(w, { manifestElsewhere: true, allowOther: true });
  t.teardown(() => Promise.all([allowed.origin.close(), allowed.other.close()]));
  const report = await pull(loadPullConfig(allowed.config), { log: memoryLog() });
  t.deepEqual(
    report.failed.map((e) => [e.repo, e.code]),
    [['/c.git', 'E_REDIRECT']],
    'only the bundle outside every allowed place is refused',
  );
  t.deepEqual(await fingerprintsMatch(w, ['/a.git', '/b.git', '/d.git']), []);
});

test('an entry nested 200,000 deep or with 100 KiB of unknown keys is refused by name, the others sync, and later runs do not crash', async (t) => {
  const w = await attackWorld(BOUNDS_REPOS);
  t.teardown(() => w.close());
  await writeBoundsManifest(w);
  const report = await pull(loadPullConfig(w.config), { log: memoryLog() });
  t.deepEqual(report.problems.map((p) => p.path).sort(), ['/deep.git', '/wide.git']);
  t.deepEqual(report.failed, []);
  t.deepEqual(await fingerprintsMatch(w, ['/good.git']), []);
  for (let run = 0; run < 2; run += 1) {
    const r = await runCli(['pull', '-c', w.config, '--no-progress']);
    t.is(r.code, 1, `run ${run + 2}: the refused entries fail the run (exit 1), nothing crashes: ${r.stderr}`);
  }
  const status = await runCli(['status', '-c', w.config, '--json']);
  t.is(status.code, 0);
});

test('repository paths with C1 controls, line separators or bidi controls are refused, and no origin string reaches a terminal, the log or state.json raw', async (t) => {
  const w = await attackWorld(STRING_REPOS);
  t.teardown(() => w.close());
  await writeStringsAttack(w);
  const { code, texts } = await outputsOfAPull(w);
  t.is(code, 1);
  for (const [where, text] of Object.entries(texts))
    t.false(UNSAFE_OUTPUT.test(text), `${where} holds no raw control, separator or bidi character`);
  for (const p of HOSTILE_PATHS)
    t.true(texts.stderr.includes(quoteUntrusted(p)), `${JSON.stringify(p)} is named, escaped`);
  t.is((await recordedState(w.toplevel))['/uri.git']?.lastError?.code, 'E_INDEX');
  t.deepEqual(await fingerprintsMatch(w, ['/good.git']), []);
  t.deepEqual(
    await readdir(join(w.toplevel, 'pub')).catch(() => [] as string[]),
    [],
    'no directory for a refused path',
  );
});

test('credentials in [remote] site never reach the terminal, the log or state.json', async (t) => {
  const w = await attackWorld(['/good.git', '/fetched.git', '/gone.git']);
  t.teardown(() => w.close());
  // no bundles for two repositories: git fetch from site, one of them missing at the origin
  await rm(join(w.out, 'fetched.git', 'index.json'));
  await rm(join(w.out, 'gone.git', 'index.json'));
  await rm(join(w.originTop, 'gone.git'), { recursive: true });
  const config = await readFile(w.config, 'utf8');
  await writeFile(w.config, config.replace(/^site = http:\/\//m, 'site = http://alice:s3cret@'));
  const { code, texts } = await outputsOfAPull(w, ['-v']);
  t.is(code, 1);
  t.true(texts.stderr.includes('/gone.git'), 'the failing repository is named');
  for (const [where, text] of Object.entries(texts)) t.false(text.includes('s3cret'), `${where} holds no password`);
  t.deepEqual(await fingerprintsMatch(w, ['/good.git', '/fetched.git']), []);
});

test('publish warns about a --notify-token-file every user can read, as the daemon does', async (t) => {
  const { readNotifyTokenFile } = await import('../../src/origin/notify.js');
  const { mkdtemp, chmod } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'bm-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'notify.token');
  await writeFile(file, 'test-token-0123456789abcdef\n');
  const heard: string[] = [];
  await chmod(file, 0o644);
  t.is(await readNotifyTokenFile(file, (m) => heard.push(m)), 'test-token-0123456789abcdef');
  t.is(heard.length, 1, 'world-readable: one warning');
  t.true(heard[0]!.includes(file), 'it names the file');
  await chmod(file, 0o600);
  await readNotifyTokenFile(file, (m) => heard.push(m));
  t.is(heard.length, 1, 'mode 600: no warning');
});
