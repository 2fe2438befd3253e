/**
 * A hostile origin against a replica (test/support/attacks.ts builds each
 * attack): nothing outside the toplevel changes, no hook runs, each refusal
 * carries its code and names its repository, and the other repositories
 * sync.
 */
import test from 'ava';
import { join } from 'node:path';
import { git } from '../../src/git/exec.js';
import { attackWorld, symlinkAttack, SYMLINK_ATTACKS, SYMLINK_ALLOWED, SYMLINK_REPOS } from '../support/attacks.js';

for (const via of ['http', 'kit'] as const) {
  test(`manifest symlinks that would climb out of the toplevel or into a repository are refused (${via})`, async (t) => {
    const w = await attackWorld(SYMLINK_REPOS);
    t.teardown(() => w.close());
    const outcome = await symlinkAttack(w, via);
    t.deepEqual(outcome.problems, []);
    const expected = Object.entries(SYMLINK_ATTACKS).flatMap(([repo, links]) => links.filter((l) => !SYMLINK_ALLOWED.includes(l)).map((l) => ({ repo, l })));
    for (const { repo, l } of expected) {
      t.true(
        outcome.refused.some((r) => r.code === 'E_SYMLINK' && r.repo === repo && r.what.includes(l)),
        `${l} (of ${repo}) refused with E_SYMLINK`,
      );
    }
    t.true(outcome.refused.every((r) => r.code === 'E_SYMLINK'), 'only symlinks were refused');
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
  t.is(await readFile(join(repo, 'logs', 'refs', 'heads', 'main'), 'utf8').catch(() => null), null, 'no reflog written');
});
