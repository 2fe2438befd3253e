/**
 * Seeded kill -9 trials (the randomized runner, `npm run reliability`, runs
 * many more of the same): `pull` killed during a download, an unbundle, a
 * ref transaction, a write of its state file or at a random moment;
 * `publish` killed while git writes a bundle or at a random moment. A
 * failing seed replays exactly.
 */
import test from 'ava';
import { LAB_PATHS, publishRunMs, startLab } from '../support/lab.js';
import { crashTrial, publishCrashTrial, type KillPoint } from '../support/trials.js';

test("pull killed -9 during download, unbundle, ref update, state write or at a random moment: old refs or the origin's, and the next run completes", async (t) => {
  const lab = await startLab({ bigBytes: 500_000, bytesPerSecond: 3_000_000 });
  t.teardown(() => lab.close());
  const started = Date.now();
  t.is((await lab.pull()).code, 0);
  const runMs = Date.now() - started;
  const points: KillPoint[] = ['download', 'unbundle', 'update-ref', 'state-write', 'anywhere'];
  for (const [i, point] of points.entries()) {
    const seed = 1000 + i;
    const trial = await crashTrial(lab, seed, point, { fresh: point === 'download', runMs });
    t.log(`seed ${seed} ${point}: ${trial.change}; killed ${trial.landed}; recovered ${trial.recovered}`);
    t.deepEqual(trial.problems, [], `seed ${seed} (${point}, killed ${trial.landed})`);
    t.is(trial.verified, LAB_PATHS.length);
  }
});

test('publish killed -9 at random points: the published tree stays consistent, the next publish completes at once and leaves no temp files', async (t) => {
  const lab = await startLab({ bigBytes: 500_000 });
  t.teardown(() => lab.close());
  t.is((await lab.pull()).code, 0);
  const runMs = await publishRunMs(lab);
  for (const seed of [2001, 2002, 2003]) {
    const trial = await publishCrashTrial(lab, seed, { runMs });
    t.log(`seed ${seed}: killed ${trial.landed}; next publish took ${trial.recoveryMs} ms`);
    t.deepEqual(trial.problems, [], `seed ${seed} (killed ${trial.landed})`);
    t.true(trial.recovered);
    // the lock of the killed publish is taken over once it has been quiet for 2 s, not after 30 s
    t.true(trial.recoveryMs < 15_000, `the next publish took ${trial.recoveryMs} ms`);
  }
});
