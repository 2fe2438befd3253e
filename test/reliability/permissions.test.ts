/**
 * Files this user may not write: a toplevel first pulled as root and then
 * by the service user, a log file owned by someone else. The answer is a
 * typed error naming the path, a chown hint and exit 2, never a stack trace.
 * As root the second run switches to `nobody` with setpriv (root ignores
 * mode bits); as another user the paths are made read-only instead.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmod, chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, runCli, type CliResult } from '../support/cli.js';
import { pull, replicaFor, startOrigin } from '../support/mirror.js';

const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const setpriv = asRoot && spawnSync('setpriv', ['--version']).status === 0;

/** Runs the CLI as an unprivileged user: `nobody` through setpriv when we are root, else ourselves. */
function runUnprivileged(args: string[]): Promise<CliResult> {
  if (!setpriv) return runCli(args);
  return runCli(
    ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--', process.execPath, BIN, ...args],
    { exec: 'setpriv' },
  );
}

function noCrash(t: { false(v: boolean, m?: string): void }, r: CliResult): void {
  t.false(/internal error|\n\s+at .*[(:]\d|Unhandled/.test(r.stderr), `no stack trace:\n${r.stderr}`);
}

test('a pull first run as root, then as the service user: E_PERMISSION naming the path, a chown hint, exit 2', async (t) => {
  if (asRoot && !setpriv) return t.pass('no setpriv to switch users; skipped');
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  t.is((await pull(config)).code, 0);
  // the service user owns the toplevel (and may read the test's files); the run as root left .bundlemirror behind
  await chmod(origin.dir, 0o755);
  await chmod(config, 0o644);
  if (asRoot) {
    await chown(toplevel, NOBODY, NOBODY);
    await writeFile(join(origin.dir, 'pull.log'), '');
    await chown(join(origin.dir, 'pull.log'), NOBODY, NOBODY);
  } else {
    await chmod(join(toplevel, '.bundlemirror'), 0o555);
    t.teardown(() => chmod(join(toplevel, '.bundlemirror'), 0o755));
  }
  const r = await runUnprivileged(['pull', '-c', config, '--no-progress', '--force']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /\[E_PERMISSION\]/);
  t.true(r.stderr.includes(join(toplevel, '.bundlemirror')), r.stderr);
  t.regex(r.stderr, /chown /);
  noCrash(t, r);
});

test('an unwritable log file: E_PERMISSION naming it, exit 2, no unhandled error event', async (t) => {
  if (asRoot && !setpriv) return t.pass('no setpriv to switch users; skipped');
  const origin = await startOrigin(t);
  const { config, toplevel } = await replicaFor(origin);
  const log = join(origin.dir, 'pull.log');
  await writeFile(log, '');
  await chmod(log, 0o444);
  await chmod(origin.dir, 0o755);
  await chmod(config, 0o644);
  if (asRoot) await chown(toplevel, NOBODY, NOBODY);
  const r = await runUnprivileged(['pull', '-c', config, '--no-progress']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /\[E_PERMISSION\]/);
  t.true(r.stderr.includes(log), r.stderr);
  noCrash(t, r);
});
