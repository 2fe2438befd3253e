import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { manifestStamp } from '../src/manifest/manifest-stamp.js';
import { parseManifest } from '../src/manifest/manifest.js';
import { makeFork, toplevelWith } from './support/repos.js';
import { runCli } from './support/cli.js';
import { makeSigningKey } from './support/keys.js';

async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  const { dir, toplevel, out, repos } = await toplevelWith(t, ['pub/alpha.git', 'pub/sub/beta.git'], {
    'pub/sub/beta.git': { commits: 1 },
  });
  const alpha = repos['pub/alpha.git']!;
  await makeFork(dir, toplevel, alpha.bare, 'pub/forks/alpha-fork.git');
  const key = await makeSigningKey(dir, 'origin');
  const publish = async (...args: string[]) => {
    const r = await runCli([
      'publish',
      '--toplevel',
      toplevel,
      '--out',
      out,
      '--quiet',
      '--sign-key',
      key.key,
      ...args,
    ]);
    if (r.code !== 0) throw new Error(`publish failed (${r.code}): ${r.stderr}`);
    return r;
  };
  return { dir, toplevel, out, alpha, key, publish };
}

/** What a person checking a tree by hand runs. */
function verifyByHand(allowedSigners: string, file: string): { code: number; output: string } {
  const r = spawnSync(
    'ssh-keygen',
    ['-Y', 'verify', '-f', allowedSigners, '-I', 'origin@example.org', '-n', 'bundlemirror', '-s', `${file}.sig`],
    {
      input: execFileSync('cat', [file]),
    },
  );
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

test('publish --sign-key signs the manifest and every index.json, and ssh-keygen -Y verify accepts them by hand', async (t) => {
  const { out, key, publish } = await setup(t);
  await publish();
  const files = [
    'manifest.js.gz',
    'pub/alpha.git/index.json',
    'pub/sub/beta.git/index.json',
    'pub/forks/alpha-fork.git/index.json',
  ];
  for (const f of files) {
    const r = verifyByHand(key.allowedSigners, join(out, f));
    t.is(r.code, 0, `${f}: ${r.output}`);
  }
  // bundle-lists and bundles carry no signature: the signed index names each bundle by sha256
  const sigs = (await readdir(out, { recursive: true }))
    .filter((f) => String(f).endsWith('.sig'))
    .map(String)
    .sort();
  t.deepEqual(sigs, files.map((f) => `${f}.sig`).sort());
  // a changed byte fails the same check
  const index = join(out, 'pub/alpha.git/index.json');
  await writeFile(index, (await readFile(index, 'utf8')).replace('"refs/heads/main": "', '"refs/heads/main": "0'));
  t.not(verifyByHand(key.allowedSigners, index).code, 0);
});

test('the signed manifest carries its publish time in the gzip header, which gunzip and Python (grokmirror) ignore', async (t) => {
  const { out, publish } = await setup(t);
  await publish();
  const bytes = await readFile(join(out, 'manifest.js.gz'));
  const stamp = manifestStamp(bytes);
  t.truthy(stamp);
  t.true(Math.abs(Date.parse(stamp!) - Date.now()) < 10 * 60_000);
  const py = execFileSync('python3', [
    '-c',
    'import gzip, json, sys; print(sorted(json.load(gzip.open(sys.argv[1]))))',
    join(out, 'manifest.js.gz'),
  ]).toString();
  t.is(py.trim(), "['/pub/alpha.git', '/pub/forks/alpha-fork.git', '/pub/sub/beta.git']");
  t.deepEqual(Object.keys(parseManifest(bytes).manifest).sort(), [
    '/pub/alpha.git',
    '/pub/forks/alpha-fork.git',
    '/pub/sub/beta.git',
  ]);
});

test('a full signed publish renews the stamp even when nothing changed; a hook publish of an unchanged repository does not', async (t) => {
  const { out, toplevel, publish } = await setup(t);
  await publish();
  await publish(join(toplevel, 'pub/alpha.git')); // (the first rewrites entries it read back in another key order)
  const first = manifestStamp(await readFile(join(out, 'manifest.js.gz')))!;
  await publish(join(toplevel, 'pub/alpha.git'));
  t.is(manifestStamp(await readFile(join(out, 'manifest.js.gz'))), first);
  await publish();
  const second = manifestStamp(await readFile(join(out, 'manifest.js.gz')))!;
  t.true(Date.parse(second) > Date.parse(first));
});

test('a publish with a new key re-signs unchanged indexes; a publish without a key removes signatures it can no longer vouch for', async (t) => {
  const { dir, out, toplevel, alpha, publish } = await setup(t);
  await publish();
  const index = join(out, 'pub/sub/beta.git/index.json');
  const before = await stat(index);
  const next = await makeSigningKey(dir, 'next');
  const r = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet', '--sign-key', next.key]);
  t.is(r.code, 0, r.stderr);
  t.is((await stat(index)).mtimeMs, before.mtimeMs, 'the index itself is untouched');
  const check = spawnSync(
    'ssh-keygen',
    ['-Y', 'verify', '-f', next.allowedSigners, '-I', 'next@example.org', '-n', 'bundlemirror', '-s', `${index}.sig`],
    { input: await readFile(index) },
  );
  t.is(check.status, 0, String(check.stderr));

  // files rewritten without a key lose their signature; untouched ones keep a signature that still holds
  await alpha.wt.commit('unsigned change');
  await alpha.wt.push('main');
  const unsigned = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--quiet']);
  t.is(unsigned.code, 0, unsigned.stderr);
  await t.throwsAsync(stat(join(out, 'manifest.js.gz.sig')));
  await t.throwsAsync(stat(join(out, 'pub/alpha.git/index.json.sig')));
  t.is(manifestStamp(await readFile(join(out, 'manifest.js.gz'))), null);
  t.truthy(await stat(`${index}.sig`));
});

test('publish --sign-key with an unusable key fails before writing anything', async (t) => {
  const { dir, out, toplevel } = await setup(t);
  await writeFile(join(dir, 'not-a-key'), 'hello\n');
  const r = await runCli(['publish', '--toplevel', toplevel, '--out', out, '--sign-key', join(dir, 'not-a-key')]);
  t.not(r.code, 0);
  t.regex(r.stderr, /E_SIGNATURE_TOOL/);
  await t.throwsAsync(stat(join(out, 'manifest.js.gz')));
});
