import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
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

test('the launcher runs the build until a source it was built from is saved after it, then the sources', async (t) => {
  const top = await builtCheckout(t, 'bm-launcher-');
  const { builtAt } = JSON.parse(await readFile(join(top, 'dist', 'built-from.json'), 'utf8')) as { builtAt: number };
  const version = (): string =>
    spawnSync(process.execPath, [join(top, 'bin', 'bundlemirror'), '--version'], { encoding: 'utf8' }).stdout.trim();
  const source = join(top, 'src', 'version.ts');
  // an edit dated before the build is not seen: the build runs
  await writeFile(source, "export const VERSION = '9.9.9-edited';\n");
  const before = new Date(builtAt - 60_000);
  await utimes(source, before, before);
  t.is(version(), VERSION);
  // saved after the build: the sources run
  const after = new Date(builtAt + 1_000);
  await utimes(source, after, after);
  t.is(version(), '9.9.9-edited');
});

/** Each command's options as its --help lists them: [short?, long] pairs, --help itself left out. */
function helpOptions(help: string): string[][] {
  return [...help.matchAll(/^ {2}(?:(-\w), )?(--[a-z0-9-]+)/gm)]
    .map((m) => [m[1], m[2]].filter((f): f is string => f !== undefined))
    .filter((o) => !o.includes('--help'));
}

/** A checkout of its own, built, as npm ci leaves it: its top directory. */
async function builtCheckout(t: ExecutionContext, prefix: string): Promise<string> {
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const top = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(top, { recursive: true, force: true }));
  await mkdir(join(top, 'bin'));
  await cp(join(repo, 'bin', 'bundlemirror'), join(top, 'bin', 'bundlemirror'));
  await cp(join(repo, 'src'), join(top, 'src'), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json']) await cp(join(repo, f), join(top, f));
  await symlink(join(repo, 'node_modules'), join(top, 'node_modules'));
  const built = spawnSync(
    process.execPath,
    [fileURLToPath(new URL('../scripts/build.mjs', import.meta.url)), '--outdir', join(top, 'dist')],
    { encoding: 'utf8' },
  );
  t.is(built.status, 0, built.stderr);
  return top;
}

test('pull runs from the build with a code cache its first run writes, and reads it on the next', async (t) => {
  const top = await builtCheckout(t, 'bm-pull-cache-');
  const conf = join(top, 'pull.conf');
  await writeFile(
    conf,
    `[core]\ntoplevel = ${top}\n[remote]\nsite = https://origin.example\nmanifest = \${site}/manifest.js.gz\n`,
  );
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(top, 'bin', 'bundlemirror'), 'pull', ...args], { encoding: 'utf8' });
  const caches = async () => (await readdir(join(top, 'dist', 'cli'))).filter((f) => f.endsWith('.v8'));
  t.deepEqual(await caches(), []);
  // a command line pull does not read by itself goes to commander and writes no cache
  const usage = cli('--config-check');
  t.is(usage.status, 2, usage.stderr);
  t.deepEqual(await caches(), []);
  const first = cli('-c', conf, '--config-check');
  t.is(first.status, 0, first.stderr);
  t.regex(first.stdout, /usable/);
  const written = await caches();
  t.is(written.length, 1);
  const writtenAt = (await stat(join(top, 'dist', 'cli', written[0]!))).mtimeMs;
  const second = cli('--config', conf, '--config-check');
  t.is(second.status, 0, second.stderr);
  t.is(second.stdout, first.stdout);
  t.deepEqual(await caches(), written);
  t.is((await stat(join(top, 'dist', 'cli', written[0]!))).mtimeMs, writtenAt, 'V8 took the cache: not written again');
  // another node's cache of this build stays when this node writes its own; an older build's goes
  const builtAt = written[0]!.split('.')[2]!;
  const otherNode = `pull.cjs.${builtAt}.v18.99.0.${process.arch}.v8`;
  const olderBuild = `pull.cjs.1.${process.version}.${process.arch}.v8`;
  for (const f of [otherNode, olderBuild]) await writeFile(join(top, 'dist', 'cli', f), 'not a cache');
  await rm(join(top, 'dist', 'cli', written[0]!));
  const third = cli('-c', conf, '--config-check');
  t.is(third.status, 0, third.stderr);
  t.deepEqual((await caches()).sort(), [otherNode, written[0]!].sort());
  // errors end the command as main.js ends it: message, code, status
  const missing = cli('-c', join(top, 'nope.conf'));
  t.is(missing.status, 2);
  t.regex(missing.stderr, /E_CONFIG/);
});

test('publish, as a post-receive hook runs it, comes from the build with a code cache of its own', async (t) => {
  const top = await builtCheckout(t, 'bm-publish-cache-');
  const toplevel = join(top, 'git');
  const git = spawnSync('git', ['init', '-q', '--bare', join(toplevel, 'a.git')], { encoding: 'utf8' });
  t.is(git.status, 0, git.stderr);
  const out = join(top, 'published');
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(top, 'bin', 'bundlemirror'), 'publish', ...args], { encoding: 'utf8' });
  const caches = async (command: string) =>
    (await readdir(join(top, 'dist', 'cli'))).filter((f) => f.startsWith(`${command}.cjs.`) && f.endsWith('.v8'));
  // a command line the hook's reader leaves alone goes to commander and writes no cache
  const usage = cli('--quiet', join(toplevel, 'a.git'));
  t.is(usage.status, 2, usage.stderr);
  t.deepEqual(await caches('publish'), []);
  const hook = ['--quiet', '--toplevel', toplevel, '--out', out, join(toplevel, 'a.git')];
  const first = cli(...hook);
  t.is(first.status, 0, first.stderr);
  await stat(join(out, 'manifest.js.gz'));
  const written = await caches('publish');
  t.is(written.length, 1);
  const writtenAt = (await stat(join(top, 'dist', 'cli', written[0]!))).mtimeMs;
  const second = cli(...hook);
  t.is(second.status, 0, second.stderr);
  t.regex(second.stdout, /manifest unchanged/);
  t.deepEqual(await caches('publish'), written);
  t.is((await stat(join(top, 'dist', 'cli', written[0]!))).mtimeMs, writtenAt, 'V8 took the cache: not written again');
  // the shipped hook's line, its settings in a config file, runs from the same copy and cache
  const publishConf = join(top, 'publish.conf');
  await writeFile(publishConf, `[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\n`);
  const fromConfig = cli('-c', publishConf, '--quiet', join(toplevel, 'a.git'));
  t.is(fromConfig.status, 0, fromConfig.stderr);
  t.regex(fromConfig.stdout, /manifest unchanged/);
  t.is((await stat(join(top, 'dist', 'cli', written[0]!))).mtimeMs, writtenAt);
  // pull's cache is its own: a pull writes one beside publish's and leaves publish's alone
  const conf = join(top, 'pull.conf');
  await writeFile(
    conf,
    `[core]\ntoplevel = ${top}\n[remote]\nsite = https://origin.example\nmanifest = \${site}/manifest.js.gz\n`,
  );
  const pull = spawnSync(process.execPath, [join(top, 'bin', 'bundlemirror'), 'pull', '-c', conf, '--config-check'], {
    encoding: 'utf8',
  });
  t.is(pull.status, 0, pull.stderr);
  t.is((await caches('pull')).length, 1);
  t.deepEqual(await caches('publish'), written);
  // errors end the command as main.js ends it: the same code and status with commander (--wait) as without
  const missing = cli('--quiet', '--toplevel', join(top, 'nope'), '--out', out);
  const viaCommander = cli('--quiet', '--toplevel', join(top, 'nope'), '--out', out, '--wait', '300');
  t.is(missing.status, 2);
  t.regex(missing.stderr, /E_TOPLEVEL/);
  t.is(viaCommander.status, missing.status);
  t.regex(viaCommander.stderr, /E_TOPLEVEL/);
});

test("the README's command synopses and each command's --help list the same options", async (t) => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  const block = readme.split('## Commands\n\n```\n')[1]!.split('\n```')[0]!;
  const synopsis = new Map<string, Set<string>>();
  let cmd = '';
  for (const line of block.split('\n')) {
    cmd = /^bundlemirror (\w+)/.exec(line)?.[1] ?? cmd;
    const flags = synopsis.get(cmd) ?? new Set<string>();
    for (const f of line.matchAll(/(?<![\w-])(--?[a-z][a-z0-9-]*)/g)) flags.add(f[1]!);
    synopsis.set(cmd, flags);
  }
  t.true(synopsis.size >= 9);
  for (const [name, flags] of synopsis) {
    const help = (await runCli([name, '--help'])).stdout;
    const options = helpOptions(help);
    const listed = new Set(options.flat());
    t.deepEqual(
      [...flags].filter((f) => !listed.has(f)),
      [],
      `${name}: in the README synopsis, not in --help`,
    );
    t.deepEqual(
      options.filter((o) => !o.some((f) => flags.has(f))).map((o) => o.join(', ')),
      [],
      `${name}: in --help, not in the README synopsis`,
    );
  }
});

test('serve --help shows its defaults as they are written (1h, 2G), not as milliseconds or bytes', async (t) => {
  const help = (await runCli(['serve', '--help'])).stdout;
  t.deepEqual(help.match(/default: "?\d{5,}/g) ?? [], []);
});
