import test from 'ava';
import { readFile } from 'node:fs/promises';
import { VERSION } from '../src/version.js';
import { runCli } from './support/cli.js';

test('the CLI reports the version package.json declares', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.is(VERSION, pkg.version);
  const r = await runCli(['--version']);
  t.is(r.stdout.trim(), pkg.version);
});
