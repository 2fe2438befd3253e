/**
 * The error contract: what `forRepo` makes of an error raised under a
 * repository, and what the CLI does with a bug (E_INTERNAL, exit 70).
 */
import test from 'ava';
import { BundlemirrorError, ExitStatus, forRepo } from '../src/errors.js';
import { GitError } from '../src/git/exec.js';
import { BIN, runCli } from './support/cli.js';

function errno(code: string, syscall: string, path?: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall}`), { code, syscall, ...(path ? { path } : {}) });
}

test('forRepo keeps the code of our own errors and names the repository', (t) => {
  const e = forRepo(new BundlemirrorError('E_INDEX', 'bad index'), '/pub/a.git');
  t.is(e.code, 'E_INDEX');
  t.is(e.repo, '/pub/a.git');
  t.is(e.exitStatus, ExitStatus.repoFailed);
  // one that already names its repository is passed on as it is
  const named = new BundlemirrorError('E_FINGERPRINT', 'mismatch', { repo: '/pub/b.git' });
  t.is(forRepo(named, '/pub/a.git'), named);
});

test('forRepo keeps a git failure as E_GIT', (t) => {
  const e = forRepo(new GitError(['fetch'], 128, 'fatal: remote hung up', 'git fetch failed'), '/pub/a.git');
  t.is(e.code, 'E_GIT');
  t.is(e.repo, '/pub/a.git');
  t.is(e.exitStatus, ExitStatus.repoFailed);
});

test('forRepo maps errno errors of the disk and the network to their codes', (t) => {
  t.is(forRepo(errno('ENOSPC', 'write'), '/pub/a.git').code, 'E_DISK');
  t.is(forRepo(errno('EDQUOT', 'write'), '/pub/a.git').code, 'E_DISK');
  t.is(forRepo(errno('EIO', 'read'), '/pub/a.git').code, 'E_DISK');
  t.is(forRepo(errno('EACCES', 'open', '/nonexistent/x'), '/pub/a.git').code, 'E_PERMISSION');
  t.is(forRepo(errno('ECONNRESET', 'read'), '/pub/a.git').code, 'E_DOWNLOAD');
  t.is(forRepo(errno('ETIMEDOUT', 'connect'), '/pub/a.git').code, 'E_DOWNLOAD');
  for (const e of [errno('ENOSPC', 'write'), errno('ECONNRESET', 'read')])
    t.is(forRepo(e, '/pub/a.git').repo, '/pub/a.git');
});

test('forRepo turns a bug into E_INTERNAL naming the repository, not into a git failure', (t) => {
  for (const bug of [
    new TypeError("Cannot read properties of undefined (reading 'oid')"),
    new RangeError('Invalid array length'),
    new Error('an invariant broke'),
    'a thrown string',
    undefined,
  ]) {
    const e = forRepo(bug, '/pub/a.git');
    t.is(e.code, 'E_INTERNAL');
    t.is(e.repo, '/pub/a.git');
    t.is(e.exitStatus, ExitStatus.internal);
    t.is(e.cause, bug);
  }
  t.is(ExitStatus.internal, 70);
});

test("a bug's description carries its stack, made safe to print", (t) => {
  const bug = new TypeError('x\u001b[31m');
  const text = forRepo(bug, '/pub/a.git').describe();
  t.true(text.includes('[E_INTERNAL]'));
  t.true(text.includes('errors.test.ts'), text); // where it happened
  t.false(text.includes('\u001b'));
});

test('a bug in a command exits 70 with E_INTERNAL and its stack, not 1', async (t) => {
  // a planted bug: the command's own output write throws a TypeError
  const plant = `data:text/javascript,process.stdout.write=()=>{throw new TypeError('planted bug')}`;
  const r = await runCli(['--import', plant, BIN, 'pull', '--help'], {
    exec: process.execPath,
  });
  t.is(r.code, ExitStatus.internal, r.stderr);
  t.true(r.stderr.includes('[E_INTERNAL]'), r.stderr);
  t.regex(r.stderr, /\n\s+at /); // the stack, for the report
});
