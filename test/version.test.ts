import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../src/version.js';
import { runCli } from './support/cli.js';

test('the CLI reports the version package.json declares', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(VERSION, pkg.version);
  const r = await runCli(['--version']);
  t.is(r.stdout.trim(), pkg.version);
});

test('the bundled CLI that npm ci builds loads every command and answers --version', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'bm-build-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const build = spawnSync(
    process.execPath,
    [fileURLToPath(new URL('../scripts/build.mjs', import.meta.url)), '--outdir', out],
    { encoding: 'utf8' },
  );
  t.is(build.status, 0, build.stderr);
  const main = join(out, 'cli', 'main.js');
  const version = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
  t.is(version.stdout.trim(), VERSION);
  // --help registers every command, so every chunk of the bundle is loaded and evaluated
  const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
  t.is(help.status, 0, help.stderr);
  for (const cmd of ['publish', 'serve', 'pull', 'clone', 'status', 'fsck', 'export', 'import', 'gc'])
    t.regex(help.stdout, new RegExp(`^  ${cmd}\\b`, 'm'));
  const usage = spawnSync(process.execPath, [main, 'publish'], { encoding: 'utf8' });
  t.is(usage.status, 2);
});
