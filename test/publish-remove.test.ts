import test from 'ava';
import { readRefsState } from '../src/origin/refs-state.js';
import { access, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { RACY_MS } from '../src/git/refs-signature.js';
import { readManifestFile } from '../src/manifest/manifest.js';
import { initBareRepo, showRefOf, toplevelWith } from './support/repos.js';
import { execFileSync } from 'node:child_process';
import { runCli } from './support/cli.js';
import { makeSigningKey } from './support/keys.js';
import { pull, replicaFor, startOrigin } from './support/mirror.js';
import { manifestStamp } from '../src/manifest/manifest-stamp.js';

async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  const { dir, toplevel, out, repos } = await toplevelWith(t, ['pub/alpha.git', 'pub/beta.git', 'pub/gamma.git']);
  const [alpha, beta] = [repos['pub/alpha.git']!, repos['pub/beta.git']!];
  const publish = (...args: string[]) => runCli(['publish', '--toplevel', toplevel, '--bundles', out, ...args]);
  const first = await publish('-q');
  if (first.code !== 0) throw new Error(first.stderr);
  return { dir, toplevel, out, alpha, beta, publish };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );
const paths = async (out: string) => Object.keys(await readManifestFile(join(out, 'manifest.js.gz'))).sort();

test('publish -x DIR takes a deleted repository out of the manifest and touches nothing else; gc deletes its files after the grace period', async (t) => {
  const { toplevel, out, beta, publish } = await setup(t);
  // ref files are recorded only once older than RACY_MS: let beta's settle and publish again, so there is a record to forget
  const recorded = async () => Object.fromEntries((await readRefsState(out)).known);
  await delay(RACY_MS + 100);
  t.is((await publish('-q')).code, 0);
  t.true('/pub/beta.git' in (await recorded()), 'recorded before the removal');
  const otherIndex = join(out, 'pub/alpha.git/index.json');
  const before = (await stat(otherIndex)).mtimeMs;
  await rm(beta.bare, { recursive: true });
  const r = await publish('-x', beta.bare);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/pub/gamma.git']);
  t.is((await stat(otherIndex)).mtimeMs, before, 'other repositories are not republished');
  t.true(await exists(join(out, 'pub/beta.git/index.json')), 'its files stay for the grace period');
  t.false('/pub/beta.git' in (await recorded()), 'its recorded ref files are forgotten');

  const gc = await runCli(['gc', '--bundles', out, '--grace-days', '0']);
  t.is(gc.code, 0, gc.stderr);
  t.false(await exists(join(out, 'pub/beta.git')), 'unreferenced: deleted by gc');
  t.true(await exists(join(out, 'pub/alpha.git/index.json')));

  // by manifest path, and by a path relative to the working directory
  await rm(join(toplevel, 'pub/gamma.git'), { recursive: true });
  const rel = await runCli(['publish', '--toplevel', toplevel, '--bundles', out, '-x', 'pub/gamma.git'], {
    cwd: toplevel,
  });
  t.is(rel.code, 0, rel.stderr);
  t.deepEqual(await paths(out), ['/pub/alpha.git']);
});

test('publish -x refuses a repository still on disk (E_REPO_EXISTS, exit 2) unless --force; a path not in the manifest is E_NOT_FOUND naming it; nothing changes on refusal', async (t) => {
  const { toplevel, out, beta, publish } = await setup(t);
  const manifestBefore = await readFile(join(out, 'manifest.js.gz'));
  const still = await publish('-x', '/pub/beta.git');
  t.is(still.code, 2, still.stderr);
  t.regex(still.stderr, /\[E_REPO_EXISTS\]/);
  t.true(still.stderr.includes('/pub/beta.git'));

  await rm(beta.bare, { recursive: true });
  const unknown = await publish('-x', '/pub/beta.git', join(toplevel, 'pub/nosuch.git'));
  t.is(unknown.code, 1, unknown.stderr);
  t.regex(unknown.stderr, /\[E_NOT_FOUND\]/);
  t.true(unknown.stderr.includes('/pub/nosuch.git'), unknown.stderr);
  t.deepEqual(await readFile(join(out, 'manifest.js.gz')), manifestBefore, 'nothing removed');

  const outside = await publish('-x', '/tmp/../etc/passwd.git');
  t.is(outside.code, 2, outside.stderr);
  t.regex(outside.stderr, /\[E_USAGE\]/);
  const none = await publish('-x');
  t.is(none.code, 2);
  const forceAlone = await publish('--force');
  t.is(forceAlone.code, 2, 'a publish with --force but no -x is refused');

  const forced = await publish('-x', '--force', '/pub/gamma.git');
  t.is(forced.code, 0, forced.stderr);
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/pub/beta.git'], 'beta stays until asked');
  // the next full publish finds gamma on disk again
  t.is((await publish('-q')).code, 0);
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/pub/gamma.git']);

  // an unreadable manifest is reported as such, not as every path being unpublished, and stays as it was
  const garbage = Buffer.from('not a gzipped manifest');
  await writeFile(join(out, 'manifest.js.gz'), garbage);
  const broken = await publish('-x', '--force', '/pub/gamma.git');
  t.not(broken.code, 0, broken.stderr);
  t.regex(broken.stderr, /\[E_MANIFEST\]/);
  t.true(broken.stderr.includes('/pub/gamma.git'), broken.stderr);
  t.deepEqual(await readFile(join(out, 'manifest.js.gz')), garbage, 'nothing written');
});

test('publish -x of a repository others borrow objects from clears their reference, and of a symlink name drops just that name', async (t) => {
  const { toplevel, out, alpha, publish } = await setup(t);
  // a repository borrowing alpha's objects: the manifest names alpha as its reference
  const user = await initBareRepo(join(toplevel, 'pub/ref-user.git'));
  await writeFile(join(user, 'objects/info/alternates'), join(alpha.bare, 'objects') + '\n');
  const tip = (await showRefOf(alpha.bare)).split(' ')[0]!;
  execFileSync('git', ['--git-dir', user, 'update-ref', 'refs/heads/main', tip]);
  await symlink(alpha.bare, join(toplevel, 'pub/alias.git'));
  t.is((await publish('-q')).code, 0);
  let m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.is(m['/pub/ref-user.git']?.reference, '/pub/alpha.git');
  t.deepEqual(m['/pub/alpha.git']?.symlinks, ['/pub/alias.git']);

  await rm(join(toplevel, 'pub/alias.git'));
  t.is((await publish('-x', '/pub/alias.git')).code, 0);
  m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.truthy(m['/pub/alpha.git']);
  t.is(m['/pub/alpha.git']?.symlinks, undefined);

  t.is((await publish('-x', '--force', alpha.bare)).code, 0);
  m = await readManifestFile(join(out, 'manifest.js.gz'));
  t.false('/pub/alpha.git' in m);
  t.is(m['/pub/ref-user.git']?.reference ?? null, null);
});

test('publish -x on a signing origin signs the shorter manifest with a newer stamp', async (t) => {
  const { dir, out, beta, publish } = await setup(t);
  const key = await makeSigningKey(dir, 'origin');
  t.is((await publish('-q', '--sign-key', key.key)).code, 0);
  const stampBefore = manifestStamp(await readFile(join(out, 'manifest.js.gz')));
  await rm(beta.bare, { recursive: true });
  const r = await publish('-x', beta.bare, '--sign-key', key.key);
  t.is(r.code, 0, r.stderr);
  const bytes = await readFile(join(out, 'manifest.js.gz'));
  t.true(await exists(join(out, 'manifest.js.gz.sig')));
  t.true(Date.parse(manifestStamp(bytes)!) > Date.parse(stampBefore!));
  t.false('/pub/beta.git' in (await readManifestFile(join(out, 'manifest.js.gz'))));
});

test('publish -x or a hook publish without the key on a signed tree warns, even with -q, that the manifest goes out unsigned', async (t) => {
  const { dir, out, alpha, beta, publish } = await setup(t);
  const key = await makeSigningKey(dir, 'origin');
  t.is((await publish('-q', '--sign-key', key.key)).code, 0);
  await rm(beta.bare, { recursive: true });
  const removed = await publish('-q', '-x', beta.bare);
  t.is(removed.code, 0, removed.stderr);
  t.false(await exists(join(out, 'manifest.js.gz.sig')));
  t.true(removed.stderr.includes(`warning: ${join(out, 'manifest.js.gz')}`), removed.stderr);
  // once unsigned, nothing more to warn about
  execFileSync('git', ['--git-dir', alpha.bare, 'update-ref', 'refs/heads/extra', 'HEAD']);
  const again = await publish('-q', alpha.bare);
  t.is(again.code, 0, again.stderr);
  t.false(again.stderr.includes('warning'), again.stderr);
  // a hook publish of one repository on a signed tree, without the key, warns too
  t.is((await publish('-q', '--sign-key', key.key)).code, 0);
  execFileSync('git', ['--git-dir', alpha.bare, 'update-ref', 'refs/heads/more', 'HEAD']);
  const hook = await publish('-q', alpha.bare);
  t.is(hook.code, 0, hook.stderr);
  t.true(hook.stderr.includes(`warning: ${join(out, 'manifest.js.gz')}`), hook.stderr);
});

test('after publish -x a replica with purge on deletes the repository, and one with purge off stops mirroring it', async (t) => {
  const origin = await startOrigin(t);
  const purging = await replicaFor(origin, 'purging', 'purge = yes\npurgeprotect = 100\n');
  const keeping = await replicaFor(origin, 'keeping', 'purge = no\n');
  for (const r of [purging, keeping]) {
    const p = await pull(r.config);
    t.is(p.code, 0, p.stderr);
    t.true(await exists(join(r.toplevel, 'pub/sub/beta.git/HEAD')));
  }
  await rm(origin.repos['/pub/sub/beta.git']!.bare, { recursive: true });
  await origin.publish('-x', '/pub/sub/beta.git');

  const p1 = await pull(purging.config);
  t.is(p1.code, 0, p1.stderr);
  t.false(await exists(join(purging.toplevel, 'pub/sub/beta.git')), 'purged');
  t.true(await exists(join(purging.toplevel, 'pub/alpha.git/HEAD')));

  const p2 = await pull(keeping.config);
  t.is(p2.code, 0, p2.stderr);
  t.true(await exists(join(keeping.toplevel, 'pub/sub/beta.git/HEAD')), 'kept on disk with purge off');
  const local = await readManifestFile(join(keeping.toplevel, 'manifest.js.gz'));
  t.false('/pub/sub/beta.git' in local, 'no longer listed as mirrored');
});
