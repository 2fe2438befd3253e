/**
 * Things happening at once: `publish` rewriting the published tree while
 * `serve` serves it and a replica pulls from it, again and again. Every run
 * of the replica either verifies what it got or fails with a retryable
 * error that names the repository; its repositories are never corrupt; and
 * once the origin is quiet, the next run ends with every fingerprint equal.
 */
import test from 'ava';
import { git } from '../../src/git/exec.js';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { leftovers, refsOrNull, verifyMirror } from '../support/reliability.js';
import { advanceOrigin, checkPublishedTree, LAB_PATHS, rng, startLab } from '../support/lab.js';

test('a replica pulling in a loop while the origin publishes again and again (served all along) always ends verified', async (t) => {
  const lab = await startLab({ bigBytes: 300_000, bytesPerSecond: 4_000_000 });
  t.teardown(() => lab.close());
  const random = rng(31);
  let publishing = true;
  const treeProblems: string[] = [];
  const publisher = (async () => {
    try {
      for (let i = 0; i < 6; i += 1) {
        await advanceOrigin(lab, random, { publish: false });
        // the real command, in its own process, as a post-receive hook or cron runs it
        const r = await runCli(['publish', '--toplevel', lab.originTop, '--out', lab.out, '--quiet']);
        if (r.code !== 0) treeProblems.push(`publish ${i} exited ${r.code}: ${r.stderr}`);
        treeProblems.push(...(await checkPublishedTree(lab.out)));
      }
    } finally {
      publishing = false;
    }
  })();

  const runs: { code: number; errors: string[] }[] = [];
  while (publishing) {
    const r = await lab.pull();
    runs.push({ code: r.code, errors: r.stderr.split('\n').filter((l) => l.startsWith('ERROR')) });
    // whatever the run did, no repository is ever corrupt
    for (const p of LAB_PATHS) {
      if ((await refsOrNull(lab.replicaTop, p)) === null) continue;
      const fsck = await git(['fsck', '--no-dangling'], {
        gitDir: join(lab.replicaTop, p.slice(1)),
        okCodes: [1, 2, 4],
      });
      t.is(fsck.code, 0, `${p} after run ${runs.length}: ${fsck.stderr}`);
    }
  }
  await publisher;
  t.deepEqual(treeProblems, [], 'the published tree was consistent after every publish');
  t.log(`${runs.length} pulls during 6 publishes; exit codes ${runs.map((r) => r.code).join(' ')}`);
  for (const r of runs) {
    t.true(r.code === 0 || r.code === 1, `exit ${r.code}`);
    // the one failure this race may cause: the origin moved on between manifest and fetch, said as such and retried
    for (const line of r.errors) t.regex(line, /^ERROR: \/pub\/[^:]+: .*\[E_FINGERPRINT\]/);
  }
  t.true(runs.length >= 2, 'pulls overlapped the publishes');

  const final = await lab.pull();
  t.is(final.code, 0, final.stderr);
  for (const c of await verifyMirror(lab.originTop, lab.replicaTop, LAB_PATHS)) t.true(c.ok, `${c.path}: ${c.why}`);
  t.deepEqual(await leftovers(lab.replicaTop), []);
});
