/**
 * The bench's fleet (bench/lib/fleet.ts) writes its replica's repositories
 * directly, without git: they must be what `pull` would have left, or the
 * poll scenario measures a first pull that writes settings real use never
 * pays for.
 */
import test from 'ava';
import { readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { replicaConfigText, writeReplicaConfig } from '../bench/lib/context.js';
import { pushCommit } from '../bench/lib/data.js';
import { fleetPaths, makeFleet } from '../bench/lib/fleet.js';
import { gitText } from '../src/git/exec.js';
import { publish } from '../src/origin/publish.js';
import { parsePullConfig } from '../src/replica/config/config.js';
import { startServer } from '../src/server/server.js';
import { runCli } from './support/cli.js';
import { tempDir } from './support/repos.js';

const N = 2;
const dirOf = (top: string, path: string) => join(top, ...path.slice(1).split('/'));

/** `git config --local --list` with the toplevel written as TOP: what does not depend on where the replica is. */
async function localConfig(top: string, path: string): Promise<string[]> {
  const real = await realpath(top);
  const text = await gitText(['config', '--local', '--list'], { gitDir: dirOf(top, path) });
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(real).join('TOP'));
}

test('a fleet replica holds the config pull gives a mirror it clones, so a pull that updates one writes no setting', async (t) => {
  const { dir, cleanup } = await tempDir('bm-fleet-');
  t.teardown(cleanup);
  const origin = join(dir, 'origin');
  const out = join(dir, 'published');
  const replica = join(dir, 'replica');
  const fresh = join(dir, 'fresh');
  // the owner the replica's pull gives a repository whose entry names none, as the poll scenario takes it
  const replicaOwner = parsePullConfig(replicaConfigText(join(dir, 'replica.conf'), replica, 'http://127.0.0.1'), {
    realpath: false,
  }).pull.defaultOwner;
  await makeFleet({ n: N, origin, out, replica, replicaOwner });
  const server = await startServer({ bundles: out, toplevel: origin, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => server.close({ graceMs: 100 }));
  const base = `http://127.0.0.1:${server.port}`;
  const pull = async (top: string) =>
    runCli(['pull', '-c', await writeReplicaConfig(`${top}.conf`, top, base), '--no-progress']);

  const cloned = await pull(fresh);
  t.is(cloned.code, 0, cloned.stderr);
  for (const path of fleetPaths(N))
    t.deepEqual(await localConfig(replica, path), await localConfig(fresh, path), `${path}: the config a pull leaves`);

  // one repository changes: the pull updates it and finds its config as it wants it
  const path = fleetPaths(N)[1]!;
  await pushCommit(dirOf(origin, path), { seed: 'fleet-test', bytes: 4096, time: 1_800_000_000 });
  const published = await publish({ toplevel: origin, out, only: [dirOf(origin, path)] });
  t.is(published.failed.length, 0);
  const before = await readFile(join(dirOf(replica, path), 'config'));
  const updated = await pull(replica);
  t.is(updated.code, 0, updated.stderr);
  t.is(
    await gitText(['rev-parse', 'refs/heads/main'], { gitDir: dirOf(replica, path) }),
    await gitText(['rev-parse', 'refs/heads/main'], { gitDir: dirOf(origin, path) }),
    'the replica has the new commit',
  );
  t.deepEqual(await readFile(join(dirOf(replica, path), 'config')), before, 'the pull wrote no setting');
});
