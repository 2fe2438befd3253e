import test from 'ava';
import { readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { git } from '../src/git/exec.js';
import { RACY_MS } from '../src/git/refs-signature.js';
import { parseManifest } from '../src/manifest/manifest.js';
import { startServer } from '../src/server/server.js';
import { initBareRepo, tempDir } from './support/repos.js';
import { runCli } from './support/cli.js';
import { fingerprintOf, pull, writeConfig } from './support/mirror.js';

const REPOS = 24;
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
const who = {
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@example.org',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@example.org',
};

/** One commit on main, made with plumbing: a collection of many repositories in seconds. */
async function commit(bare: string, message: string, parent?: string): Promise<string> {
  const args = ['commit-tree', EMPTY_TREE, '-m', message, ...(parent ? ['-p', parent] : [])];
  const oid = (await git(args, { gitDir: bare, env: who })).stdout.toString().trim();
  await git(['update-ref', 'refs/heads/main', oid], { gitDir: bare });
  return oid;
}

test('one changed repository among many: the hook publish writes the manifest a full publish writes, and a poll updates just that one', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'origin');
  const out = join(dir, 'published');
  const paths = Array.from({ length: REPOS }, (_, i) => `/g${i % 3}/r${String(i).padStart(2, '0')}.git`);
  const tips = new Map<string, string>();
  for (const [i, p] of paths.entries()) {
    const bare = await initBareRepo(join(toplevel, p), {
      description: `repository ${i}`,
      ...(i % 5 === 0 ? { owner: `owner ${i}` } : {}),
    });
    tips.set(p, await commit(bare, `root of ${p}`));
  }
  // another name for one of them: the manifest lists it as that repository's symlink
  await symlink(join(toplevel, paths[4]!), join(toplevel, 'g0', 'alias.git'));
  const publish = async (...args: string[]) => {
    const r = await runCli(['publish', '--toplevel', toplevel, '--bundles', out, '--quiet', ...args]);
    t.is(r.code, 0, r.stderr);
    return r.stdout;
  };
  await publish();
  // settled ref files are recorded: the next publishes skip unchanged repositories without git
  await sleep(RACY_MS + 200);
  await publish();
  const manifestFile = join(out, 'manifest.js.gz');
  const before = parseManifest(await readFile(manifestFile)).manifest;
  t.deepEqual(before[paths[4]!]?.symlinks, ['/g0/alias.git']);

  const server = await startServer({ bundles: out, toplevel, host: '127.0.0.1', port: 0, log: false });
  t.teardown(() => server.close());
  const replica = join(dir, 'replica');
  const config = await writeConfig(dir, {
    toplevel: replica,
    manifest: `${server.url}/manifest.js.gz`,
    site: `${server.url}/git`,
  });
  const first = await pull(config);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stdout, new RegExp(`cloned ${REPOS}, updated 0`));

  // a push to one repository in the middle, published by the post-receive hook
  const changed = paths[13]!;
  const bare = join(toplevel, changed);
  await commit(bare, 'a push', tips.get(changed));
  t.regex(await publish(bare), /published 1 changed, 0 unchanged/);
  const afterHook = await readFile(manifestFile);
  const hooked = parseManifest(afterHook).manifest;
  t.is(hooked[changed]?.fingerprint, await fingerprintOf(bare));
  t.not(hooked[changed]?.fingerprint, before[changed]?.fingerprint);
  for (const p of paths) if (p !== changed) t.deepEqual(hooked[p], before[p], `${p} carried over as it was`);

  // the nightly full publish derives every entry again and finds nothing to rewrite: the same bytes
  t.regex(await publish(), /manifest unchanged/);
  t.deepEqual(await readFile(manifestFile), afterHook);

  const poll = await pull(config);
  t.is(poll.code, 0, poll.stderr);
  t.regex(poll.stdout, new RegExp(`cloned 0, updated 1, unchanged ${REPOS - 1}, failed 0`));
  for (const p of paths) t.is(await fingerprintOf(join(replica, p)), String(hooked[p]?.fingerprint), p);
  // the replica's own manifest holds the origin's entries
  t.deepEqual(parseManifest(await readFile(join(replica, 'manifest.js.gz'))).manifest, hooked);
});
