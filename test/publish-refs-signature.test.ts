import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readManifestFile } from '../src/manifest/manifest.js';
import { RACY_MS } from '../src/git/refs-signature.js';
import { readRefsState } from '../src/origin/refs-state.js';
import { git } from '../src/git/exec.js';
import { makeRepo, showRefOf, tempDir } from './support/repos.js';
import { runCli } from './support/cli.js';

async function publish(toplevel: string, out: string, ...extra: string[]) {
  const r = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet', ...extra]);
  if (r.code !== 0) throw new Error(`publish failed (${r.code}): ${r.stderr}`);
  return r;
}

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** Overwrites a file in place (same inode, same size) and puts its mtime back: only the ctime tells. */
async function sneakyRewrite(file: string, from: string, to: string): Promise<void> {
  const before = await stat(file);
  const text = await readFile(file, 'utf8');
  if (!text.includes(from) || from.length !== to.length) throw new Error(`${file} does not hold ${from}`);
  await writeFile(file, text.replace(from, to));
  await utimes(file, before.atime, before.mtime);
  const after = await stat(file);
  if (after.ino !== before.ino || after.size !== before.size)
    throw new Error('the rewrite was meant to keep inode and size');
}

test('a publish that skips unchanged repositories by their ref files still notices every change to a ref', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const toplevel = join(dir, 'top');
  const out = join(dir, 'out');
  const names = ['loose', 'packed', 'nested', 'update', 'removed', 'quiet'];
  const repos = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, await makeRepo(dir, toplevel, `${n}.git`)] as const)),
  );
  await git(['pack-refs', '--all'], { gitDir: repos.packed!.bare });
  await publish(toplevel, out);
  // ref files changed moments ago are not trusted; once they have settled, the next publish records them
  await sleep(RACY_MS + 200);
  await publish(toplevel, out);
  const state = await readRefsState(out);
  t.deepEqual(
    [...state.known.keys()].sort(),
    names.map((n) => `/${n}.git`).sort(),
    'every settled repository has a recorded signature',
  );

  const oid = async (n: string, rev: string) =>
    (await git(['rev-parse', rev], { gitDir: repos[n]!.bare })).stdout.toString().trim();
  // a loose ref rewritten in place: same inode, same size, same mtime
  await sneakyRewrite(
    join(repos.loose!.bare, 'refs/heads/devel'),
    await oid('loose', 'devel'),
    await oid('loose', 'main'),
  );
  // the same inside packed-refs
  await sneakyRewrite(
    join(repos.packed!.bare, 'packed-refs'),
    `${await oid('packed', 'devel')} refs/heads/devel`,
    `${await oid('packed', 'main')} refs/heads/devel`,
  );
  // a new ref two directories down
  await git(['update-ref', 'refs/heads/topic/deep/one', await oid('nested', 'main')], { gitDir: repos.nested!.bare });
  // an ordinary update within the same second as the publish before
  await git(['update-ref', 'refs/heads/devel', await oid('update', 'main')], { gitDir: repos.update!.bare });
  await git(['update-ref', '-d', 'refs/heads/devel'], { gitDir: repos.removed!.bare });

  await publish(toplevel, out);
  const manifest = await readManifestFile(join(out, 'manifest.js.gz'));
  for (const n of names) {
    t.is(manifest[`/${n}.git`]?.fingerprint, sha1(await showRefOf(repos[n]!.bare)), n);
    const index = JSON.parse(await readFile(join(out, `${n}.git`, 'index.json'), 'utf8')) as { fingerprint: string };
    t.is(index.fingerprint, String(manifest[`/${n}.git`]?.fingerprint), `${n}: index.json`);
  }
  // the hook form reads the same record
  await sneakyRewrite(
    join(repos.quiet!.bare, 'refs/heads/devel'),
    await oid('quiet', 'devel'),
    await oid('quiet', 'main'),
  );
  await publish(toplevel, out, join(toplevel, 'quiet.git'));
  t.is(
    (await readManifestFile(join(out, 'manifest.js.gz')))['/quiet.git']?.fingerprint,
    sha1(await showRefOf(repos.quiet!.bare)),
  );
});
