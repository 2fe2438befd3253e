/**
 * grok-pull's hooks, run as real shell scripts, and projects.list.
 */
import test from 'ava';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  hookArgv,
  runHook,
  runPostCloneCompleteHooks,
  runPostUpdateHooks,
  runPostWorkCompleteHooks,
  type HookLogger,
} from '../src/replica/hooks.js';
import { shlexSplit } from '../src/config/shlex.js';
import { renderProjectsList, writeProjectsList } from '../src/replica/projects-list.js';
import { tempDir } from './support/repos.js';

async function script(dir: string, name: string, body: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

function recordingLog(): HookLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) };
}

async function setup(t: import('ava').ExecutionContext): Promise<string> {
  const { dir, cleanup } = await tempDir('bm-hooks-');
  t.teardown(cleanup);
  return dir;
}

test("post_update_hook: each configured line runs in order with the repository's full path appended", async (t) => {
  const dir = await setup(t);
  const out = join(dir, 'calls.txt');
  const hook = await script(dir, 'hook.sh', `for a in "$@"; do printf '[%s]' "$a" >> ${out}; done; echo >> ${out}`);
  const results = await runPostUpdateHooks([`${hook} --mode "two words"`, `${hook} second`], '/srv/mirror/pub/a.git');
  t.true(results.every((r) => r.ok));
  t.is(await readFile(out, 'utf8'), '[--mode][two words][/srv/mirror/pub/a.git]\n[second][/srv/mirror/pub/a.git]\n');
  t.deepEqual(results[0]!.argv, [hook, '--mode', 'two words', '/srv/mirror/pub/a.git']);
});

test("post_clone_complete_hook: no arguments, the new repositories' full paths on stdin, newline-terminated", async (t) => {
  const dir = await setup(t);
  const out = join(dir, 'stdin.txt');
  const hook = await script(dir, 'inithook.sh', `echo "args=$#" > ${out}; cat >> ${out}`);
  const [r] = await runPostCloneCompleteHooks([hook], ['/srv/m/a.git', '/srv/m/b.git']);
  t.true(r!.ok);
  t.is(await readFile(out, 'utf8'), 'args=0\n/srv/m/a.git\n/srv/m/b.git\n');
  t.deepEqual(await runPostCloneCompleteHooks([hook], []), [], 'no new clones, no hook');
});

test('post_work_complete_hook: no arguments and an empty stdin', async (t) => {
  const dir = await setup(t);
  const out = join(dir, 'work.txt');
  const hook = await script(dir, 'workhook.sh', `echo "args=$#" > ${out}; cat | wc -c >> ${out}`);
  const [r] = await runPostWorkCompleteHooks([hook]);
  t.true(r!.ok);
  t.regex(await readFile(out, 'utf8'), /^args=0\n\s*0\n$/);
});

test('the environment given is added to the inherited one', async (t) => {
  const dir = await setup(t);
  const out = join(dir, 'env.txt');
  const hook = await script(dir, 'env.sh', `echo "$BM_TEST_VALUE $HOME" > ${out}`);
  await runHook('post_work_complete_hook', hook, [], { env: { BM_TEST_VALUE: 'hello' } });
  t.is(await readFile(out, 'utf8'), `hello ${process.env.HOME}\n`);
});

test('a failing hook is reported and logged, never thrown; its output is captured', async (t) => {
  const dir = await setup(t);
  const hook = await script(dir, 'fail.sh', 'echo "indexed 3 things"; echo "database locked" >&2; exit 3');
  const log = recordingLog();
  const [r] = await runPostUpdateHooks([hook], '/srv/m/a.git', { log });
  t.like(r, { ok: false, exitCode: 3, timedOut: false, stdout: 'indexed 3 things', stderr: 'database locked' });
  t.true(log.lines.some((l) => l.startsWith('info') && l.includes('indexed 3 things')));
  t.true(log.lines.some((l) => l.startsWith('warn') && l.includes('database locked')));
  t.true(log.lines.some((l) => l.startsWith('warn') && l.includes('exited with 3')));
});

test('a hook that is not executable or not found is reported, not run, and the next line still runs', async (t) => {
  const dir = await setup(t);
  const plain = join(dir, 'plain.sh');
  await writeFile(plain, '#!/bin/sh\nexit 0\n');
  const out = join(dir, 'ran.txt');
  const good = await script(dir, 'good.sh', `touch ${out}`);
  const log = recordingLog();
  const results = await runPostWorkCompleteHooks([plain, 'bm-no-such-program-xyz', good], { log });
  t.like(results[0], { ok: false, error: `${plain} is not executable (or does not exist)` });
  t.like(results[1], { ok: false, error: 'bm-no-such-program-xyz not found' });
  t.true(results[2]!.ok);
  await t.notThrowsAsync(stat(out));
  t.is(log.lines.filter((l) => l.includes('not run')).length, 2);
});

test('a hook that runs past the time limit is killed together with the processes it started', async (t) => {
  const dir = await setup(t);
  const pidFile = join(dir, 'child.pid');
  const hook = await script(dir, 'hang.sh', `sleep 60 & echo $! > ${pidFile}; wait`);
  const started = Date.now();
  const r = await runHook('post_update_hook', hook, ['/srv/m/a.git'], { timeoutMs: 500, killGraceMs: 500 });
  t.true(Date.now() - started < 10_000);
  t.like(r, { ok: false, timedOut: true });
  const pid = Number((await readFile(pidFile, 'utf8')).trim());
  await new Promise((res) => setTimeout(res, 200));
  t.false(await isRunning(pid), 'the background sleep was killed too');
});

/** Alive and not a zombie (an orphan's zombie lingers where PID 1 does not reap, as in some containers). */
async function isRunning(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

test('an aborted signal stops a running hook', async (t) => {
  const dir = await setup(t);
  const hook = await script(dir, 'long.sh', 'sleep 60');
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const r = await runHook('post_work_complete_hook', hook, [], { timeoutMs: 0, killGraceMs: 200, signal: ac.signal });
  t.false(r.ok);
  t.is(r.signal, 'SIGTERM');
});

test('command lines split like Python shlex (posix, whitespace_split): quotes, escapes, # comments', (t) => {
  t.deepEqual(shlexSplit('/usr/bin/grok-pi-indexer -c /etc/pi/config init'), [
    '/usr/bin/grok-pi-indexer',
    '-c',
    '/etc/pi/config',
    'init',
  ]);
  t.deepEqual(shlexSplit(`/bin/hook "x y" 'z w' a\\ b`), ['/bin/hook', 'x y', 'z w', 'a b']);
  t.deepEqual(shlexSplit('/bin/hook --opt=a#b c'), ['/bin/hook', '--opt=a'], '# starts a comment, even inside a word');
  t.deepEqual(shlexSplit('/bin/hook "a#b"'), ['/bin/hook', 'a#b']);
  t.deepEqual(shlexSplit(`"a\\"b" "a\\nb" 'a\\nb' '' x`), ['a"b', 'a\\nb', 'a\\nb', '', 'x']);
  t.throws(() => shlexSplit('/bin/hook "open'), { message: /no closing quotation/ });
  t.throws(() => shlexSplit('/bin/hook \\'), { message: /escaped/ });
});

test('a leading ~ in a hook line is the home directory', (t) => {
  t.deepEqual(hookArgv('~/bin/hook.sh --x'), [join(homedir(), 'bin/hook.sh'), '--x']);
  t.deepEqual(
    hookArgv('/bin/hook ~/x'),
    ['/bin/hook', '~/x'],
    'only the start of the line, as os.path.expanduser on the whole line',
  );
});

// ---------------------------------------------------------------- projects.list

test('projects.list: one repository per line, no leading slash, sorted', (t) => {
  t.is(renderProjectsList(['/pub/b.git', '/pub/a.git', '/c.git']), 'c.git\npub/a.git\npub/b.git\n');
  t.is(renderProjectsList([]), '');
});

test('projects.list: trimtop removes a prefix from the paths that start with it', (t) => {
  t.is(renderProjectsList(['/pub/scm/a.git', '/other/b.git'], { trimtop: '/pub/scm' }), 'a.git\nother/b.git\n');
  t.is(renderProjectsList(['/pub/scm/a.git'], { trimtop: '/pub/scm/' }), 'a.git\n');
});

test('projects.list: symlinks are listed only when projectslist_symlinks is on', (t) => {
  const manifest = { '/pub/linux.git': { symlinks: ['/legacy/linux-2.6.git'] }, '/pub/x.git': {} };
  t.is(renderProjectsList(manifest), 'pub/linux.git\npub/x.git\n');
  t.is(renderProjectsList(manifest, { symlinks: true }), 'legacy/linux-2.6.git\npub/linux.git\npub/x.git\n');
  t.is(
    renderProjectsList(manifest, { symlinks: true, trimtop: '/legacy' }),
    'linux-2.6.git\npub/linux.git\npub/x.git\n',
  );
});

test('projects.list is written atomically and only rewritten when its content changes', async (t) => {
  const dir = await setup(t);
  const file = join(dir, 'projects.list');
  t.deepEqual(await writeProjectsList(file, ['/a.git', '/b.git']), { written: true, lines: 2 });
  t.is(await readFile(file, 'utf8'), 'a.git\nb.git\n');
  const before = await stat(file);
  t.deepEqual(await writeProjectsList(file, ['/b.git', '/a.git']), { written: false, lines: 2 });
  t.is((await stat(file)).ino, before.ino, 'same file, untouched');
  t.deepEqual(await writeProjectsList(file, ['/a.git']), { written: true, lines: 1 });
  t.is(await readFile(file, 'utf8'), 'a.git\n');
  t.not((await stat(file)).ino, before.ino, 'replaced by rename');
});
