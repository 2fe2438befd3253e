import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gitText } from '../src/git/exec.js';
import { startFaultProxy } from './support/fault-proxy.js';
import { BIN, runCli } from './support/cli.js';
import { startOrigin } from './support/mirror.js';

test('clone makes a working clone from bundles: branch checked out and tracking origin, tags, remote set to smart HTTP', async (t) => {
  const origin = await startOrigin(t);
  const dir = join(origin.dir, 'work');
  const r = await runCli(['clone', '--no-progress', `${origin.server.url}/pub/alpha.git`, dir]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /cloned \/pub\/alpha\.git into .* \(branch main\): 1 bundle\(s\)/);
  const originRefs = await gitText(['for-each-ref', '--format=%(objectname) %(refname)', 'refs/heads', 'refs/tags'], {
    gitDir: join(origin.toplevel, 'pub/alpha.git'),
  });
  const cloneRefs = await gitText(
    ['for-each-ref', '--format=%(objectname) %(refname)', 'refs/remotes/origin', 'refs/tags'],
    { cwd: dir },
  );
  const asOrigin = cloneRefs
    .split('\n')
    .filter((l) => !l.endsWith(' refs/remotes/origin/HEAD'))
    .map((l) => l.replace(' refs/remotes/origin/', ' refs/heads/'));
  t.deepEqual(asOrigin.sort(), originRefs.split('\n').sort());
  t.is(await gitText(['rev-parse', '--abbrev-ref', 'HEAD'], { cwd: dir }), 'main');
  t.is(await gitText(['rev-parse', '--abbrev-ref', 'main@{upstream}'], { cwd: dir }), 'origin/main');
  t.is(await gitText(['config', 'remote.origin.url'], { cwd: dir }), `${origin.server.url}/git/pub/alpha.git`);
  t.is(await gitText(['status', '--porcelain'], { cwd: dir }), '');
  t.false((await readdir(join(dir, '.git'))).includes('bundlemirror'), 'download area removed');
});

test('an interrupted clone continues where it stopped when the same command is run again', async (t) => {
  const origin = await startOrigin(t, { bigBytes: 400_000 });
  const proxy = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: origin.server.port },
    stallAfterBytes: 600_000,
  });
  t.teardown(() => proxy.close());
  const dir = join(origin.dir, 'work');
  const url = `${proxy.url('/pub/alpha.git')}`;
  // first run: the link stalls after 600 kB; the user gives up (kill)
  const child = spawn(process.execPath, [BIN, 'clone', '--no-progress', url, dir], { stdio: 'ignore' });
  const partialDir = join(dir, '.git/bundlemirror/partial');
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const names = await readdir(partialDir).catch(() => [] as string[]);
    const part = names.find((n) => n.endsWith('.part'));
    if (part && proxy.stats.stalls > 0 && (await stat(join(partialDir, part))).size > 100_000) break;
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('close', r));
  proxy.configure({});
  const r = await runCli(['clone', '--no-progress', url, dir]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /resumed [1-9]/);
  t.is(await gitText(['status', '--porcelain'], { cwd: dir }), '');
});

test('clone refuses a directory that holds something else', async (t) => {
  const origin = await startOrigin(t);
  const dir = join(origin.dir, 'busy');
  await mkdir(dir);
  await writeFile(join(dir, 'notes.txt'), 'mine');
  const r = await runCli(['clone', '--no-progress', `${origin.server.url}/pub/alpha.git`, dir]);
  t.is(r.code, 2);
  t.regex(r.stderr, /is not empty and is not an unfinished clone/);
});
