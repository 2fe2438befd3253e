import test from 'ava';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError, isBundlemirrorError } from '../src/errors.js';
import { checkToplevel, loadPullConfig, parsePullConfig, type PullConfig } from '../src/replica/config/config.js';
import { IniDocument } from '../src/config/ini.js';
import { tempDir } from './support/repos.js';

/**
 * Shaped like grokmirror 2's sample grokmirror.conf: every section, ${}
 * interpolation within and across sections, multi-line lists indented
 * under their key, comments between and inside them, empty values.
 */
const GROKMIRROR_STYLE = `
# A replica of a kernel.org-like collection.
[core]
toplevel = /var/lib/git/mirror
manifest = \${toplevel}/manifest.js.gz
log = \${toplevel}/log
loglevel = info
# object storage is grokmirror's own business
objstore = \${toplevel}/objstore

[manifest]
pretty = no
ignore = /testing/*
         /private/*

[remote]
site = https://git.kernel.org
manifest = \${site}/manifest.js.gz

[pull]
projectslist = \${core:toplevel}/projects.list
projectslist_trimtop =
projectslist_symlinks = no
post_update_hook =
post_clone_complete_hook = /usr/local/bin/index-new "--mode=init"
post_work_complete_hook =
purge = yes
purgeprotect = 5
default_owner = Grokmirror User
remotename = _grokmirror
pull_threads = 5
retries = 3
include = /pub/scm/linux/kernel/git/torvalds/linux.git
          # stable too
          /pub/scm/linux/kernel/git/stable/*
exclude =
refresh = 900

[fsck]
frequency = 30
statusfile = \${core:toplevel}/fsck.status.js
ignore_errors = notice:
                warning: disabling bitmap writing
repack = yes
`;

function parse(text: string, extra: Partial<Parameters<typeof parsePullConfig>[1]> = {}): PullConfig {
  return parsePullConfig(text, { source: 'test.conf', cpus: 8, realpath: false, cwd: '/cwd', ...extra });
}

const MINIMAL = `[core]\ntoplevel = /srv/mirror\n[remote]\nsite = https://origin.example\nmanifest = \${site}/manifest.js.gz\n`;

function configError(t: import('ava').ExecutionContext, fn: () => unknown, ...fragments: string[]): void {
  const err = t.throws(fn);
  t.true(isBundlemirrorError(err), String(err));
  if (!isBundlemirrorError(err)) return;
  t.is(err.code, 'E_CONFIG');
  t.is(err.exitStatus, 2);
  for (const f of fragments)
    t.true(err.message.includes(f), `message ${JSON.stringify(err.message)} should mention ${JSON.stringify(f)}`);
}

test('a grokmirror 2 config parses unchanged, with ${toplevel} and ${core:toplevel} resolved', (t) => {
  const c = parse(GROKMIRROR_STYLE);
  t.is(c.core.toplevel, '/var/lib/git/mirror');
  t.is(c.core.manifest, '/var/lib/git/mirror/manifest.js.gz');
  t.is(c.core.log, '/var/lib/git/mirror/log');
  t.is(c.core.loglevel, 'info');
  t.is(c.remote.site, 'https://git.kernel.org');
  t.is(c.remote.manifest, 'https://git.kernel.org/manifest.js.gz');
  t.is(c.pull.projectslist, '/var/lib/git/mirror/projects.list');
  t.is(c.pull.projectslistTrimtop, '');
  t.false(c.pull.projectslistSymlinks);
  t.deepEqual(c.pull.include, ['/pub/scm/linux/kernel/git/torvalds/linux.git', '/pub/scm/linux/kernel/git/stable/*']);
  t.deepEqual(c.pull.exclude, []);
  t.true(c.pull.purge);
  t.is(c.pull.purgeprotect, 5);
  t.is(c.pull.pullThreads, 5);
  t.is(c.pull.retries, 3);
  t.is(c.pull.refresh, 900);
  t.is(c.pull.defaultOwner, 'Grokmirror User');
  t.deepEqual(c.pull.postUpdateHook, []);
  t.deepEqual(c.pull.postCloneCompleteHook, ['/usr/local/bin/index-new "--mode=init"']);
  t.is(c.bundlemirror.bundles, 'https://git.kernel.org/', 'bundles sit next to the manifest');
  t.is(c.bundlemirror.gitUrl, 'https://git.kernel.org');
  t.deepEqual(
    c.warnings.filter((w) => w.kind === 'unknown'),
    [],
    'no key of grokmirror is reported as unknown',
  );
});

test('grokmirror settings bundlemirror does not use are accepted and noted, not errors', (t) => {
  const c = parse(GROKMIRROR_STYLE);
  const notes = c.warnings.filter((w) => w.kind === 'unused').map((w) => `${w.section}:${w.key ?? '*'}`);
  t.false(notes.includes('core:objstore'), 'objstore is read: the forkgroup stores live there');
  t.true(notes.includes('pull:remotename'), "remotename is grokmirror's; bundlemirror fetches without a named remote");
  t.true(notes.includes('manifest:*'), 'the [manifest] section belongs to grok-manifest');
  t.true(notes.includes('fsck:statusfile'), 'bundlemirror fsck keeps its own record');
  t.false(notes.includes('fsck:frequency'), 'bundlemirror fsck reads frequency');
  t.false(notes.includes('fsck:*'), '[fsck] is read by bundlemirror fsck');
});

test("defaults are grok-pull's when [pull] is absent", (t) => {
  const c = parse(MINIMAL);
  t.is(c.core.manifest, '/srv/mirror/manifest.js.gz');
  t.is(c.core.objstore, '/srv/mirror/objstore');
  t.is(c.core.log, null);
  t.deepEqual(c.pull.include, ['*']);
  t.deepEqual(c.pull.exclude, []);
  t.false(c.pull.purge);
  t.is(c.pull.purgeprotect, 5);
  t.is(c.pull.retries, 3);
  t.is(c.pull.pullThreads, 4, 'pull_threads 0 (default) means half the CPUs');
  t.is(c.pull.defaultOwner, 'Grokmirror');
  t.is(c.pull.refresh, null, 'no refresh: run once');
  t.is(c.pull.projectslist, null);
  t.is(c.bundlemirror.hookTimeoutMs, 3600_000);
  t.deepEqual(c.warnings, []);
});

test('pull_threads 0 on a single CPU still gives one worker', (t) => {
  t.is(parse(MINIMAL, { cpus: 1 }).pull.pullThreads, 1);
});

test('an empty manifest key falls back to ${toplevel}/manifest.js.gz, as grok-pull does', (t) => {
  const c = parse(MINIMAL.replace('toplevel = /srv/mirror', 'toplevel = /srv/mirror\nmanifest ='));
  t.is(c.core.manifest, '/srv/mirror/manifest.js.gz');
});

test('${toplevel} refers to the real path of the toplevel', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await mkdir(join(dir, 'real'));
  await symlink(join(dir, 'real'), join(dir, 'link'));
  const { realpath } = await import('node:fs/promises');
  const real = await realpath(join(dir, 'real'));
  const c = parsePullConfig(MINIMAL.replace('/srv/mirror', join(dir, 'link')), { cpus: 2 });
  t.is(c.core.toplevel, real);
  t.is(c.core.manifest, join(real, 'manifest.js.gz'));
});

test('both key = value and key: value work, keys are case-insensitive, ; and # comment whole lines only', (t) => {
  const c = parse(`[core]
TopLevel: /srv/m
; a comment
[remote]
SITE = https://o.example
Manifest: https://o.example/m/manifest.js.gz
[pull]
include = /a/*   # this stays part of the glob, as in configparser
    ; a comment line inside the list is skipped
    /b/*
`);
  t.is(c.core.toplevel, '/srv/m');
  t.is(c.remote.site, 'https://o.example');
  t.deepEqual(c.pull.include, ['/a/*   # this stays part of the glob, as in configparser', '/b/*']);
  t.is(c.bundlemirror.bundles, 'https://o.example/m/', "the tree root is the manifest URL's directory");
});

test("booleans accept configparser's spellings in any case", (t) => {
  for (const [word, value] of [
    ['yes', true],
    ['True', true],
    ['on', true],
    ['1', true],
    ['NO', false],
    ['false', false],
    ['Off', false],
    ['0', false],
  ] as const) {
    t.is(parse(`${MINIMAL}[pull]\npurge = ${word}\n`).pull.purge, value, word);
  }
});

test('$$ is a literal dollar sign and ${DEFAULT} values are visible everywhere', (t) => {
  const c = parse(`[DEFAULT]
root = /data
[core]
toplevel = \${root}/mirror
[remote]
site = https://o.example
manifest = \${site}/manifest.js.gz
[pull]
default_owner = Pay $$5
`);
  t.is(c.core.toplevel, '/data/mirror');
  t.is(c.pull.defaultOwner, 'Pay $5');
  t.deepEqual(c.warnings, [], 'DEFAULT variables are not unknown keys');
});

test('a relative manifest URL is resolved against the site', (t) => {
  const c = parse(MINIMAL.replace('manifest = ${site}/manifest.js.gz', 'manifest = pub/manifest.js.gz'));
  t.is(c.remote.manifest, 'https://origin.example/pub/manifest.js.gz');
  t.is(c.bundlemirror.bundles, 'https://origin.example/pub/');
});

test('[remote] mirrors is read, not reported as an unknown key', (t) => {
  const c = parse(MINIMAL.replace('[remote]\n', '[remote]\nmirrors = https://m1.example/tree https://m2.example/\n'));
  t.deepEqual(c.remote.mirrors, ['https://m1.example/tree/', 'https://m2.example/']);
  t.deepEqual(c.warnings, []);
});

test('[bundlemirror] overrides where bundles are found, how long hooks may run, and the git URL', (t) => {
  const c = parse(
    `${MINIMAL}[bundlemirror]\nbundles = https://cdn.example/tree\nhook_timeout = 0\ngit_url = https://origin.example/git/\n`,
  );
  t.is(c.bundlemirror.bundles, 'https://cdn.example/tree/');
  t.is(c.bundlemirror.hookTimeoutMs, 0);
  t.is(c.bundlemirror.gitUrl, 'https://origin.example/git');
});

test('a near miss of a key or section bundlemirror reads stops with E_CONFIG naming it and the key that was meant', (t) => {
  for (const [text, section, meant] of [
    [`${MINIMAL}[pull]\ninculde = /pub/a.git\n`, 'pull', 'include'],
    [`${MINIMAL}[pull]\npurgeprotekt = 10\n`, 'pull', 'purgeprotect'],
    [`${MINIMAL}[pul]\ninclude = /pub/a.git\n`, 'pul', 'pull'],
  ] as const) {
    const err = t.throws(() => parse(text), { instanceOf: BundlemirrorError });
    t.is(err?.code, 'E_CONFIG');
    t.true(err?.message.includes(`[${section}]`), 'the message names the section');
    t.true(`${err?.message} ${err?.hint}`.includes(meant), `suggests ${meant}`);
    t.is(err?.exitStatus, 2);
  }
});

test('an unknown key or section that resembles nothing bundlemirror reads is a warning', (t) => {
  const c = parse(`${MINIMAL}[pull]\ncolour_output = yes\n[webhooks]\nendpoint = x\n`);
  const unknown = c.warnings.filter((w) => w.kind === 'unknown');
  t.is(unknown.length, 2);
  t.like(unknown[0], { section: 'pull', key: 'colour_output' });
  t.like(unknown[1], { section: 'webhooks', key: null });
});

test('a key used only as a ${variable} is not reported as unknown', (t) => {
  const c = parse(
    `[core]\nmirrors = /srv\ntoplevel = \${mirrors}/kernel\n[remote]\nsite = https://o.example\nmanifest = \${site}/manifest.js.gz\n`,
  );
  t.is(c.core.toplevel, '/srv/kernel');
  t.deepEqual(c.warnings, []);
});

test('a section that only holds ${section:key} variables is not reported as unknown', (t) => {
  const c = parse(
    `[paths]\nroot = /srv\n[core]\ntoplevel = \${paths:root}/kernel\n[remote]\nsite = https://o.example\nmanifest = \${site}/manifest.js.gz\n`,
  );
  t.is(c.core.toplevel, '/srv/kernel');
  t.deepEqual(c.warnings, []);
});

test('an empty include warns that nothing will be mirrored', (t) => {
  const c = parse(`${MINIMAL}[pull]\ninclude =\n`);
  t.deepEqual(c.pull.include, []);
  t.true(c.warnings.some((w) => w.key === 'include' && /no repository will be mirrored/.test(w.message)));
});

test('a relative path for projectslist is resolved against the current directory, with a warning', (t) => {
  const c = parse(`${MINIMAL}[pull]\nprojectslist = lists/projects.list\n`);
  t.is(c.pull.projectslist, '/cwd/lists/projects.list');
  t.true(c.warnings.some((w) => w.key === 'projectslist' && w.kind === 'value'));
});

test('errors: a missing [core] section or toplevel', (t) => {
  configError(t, () => parse('[remote]\nsite = https://o.example\nmanifest = https://o.example/m.js.gz\n'), '[core]');
  configError(
    t,
    () => parse('[core]\nlog = /tmp/x\n[remote]\nsite = https://o\nmanifest = https://o/m\n'),
    '[core] toplevel',
    'required',
  );
});

test('errors: a relative toplevel', (t) => {
  configError(t, () => parse(MINIMAL.replace('/srv/mirror', 'srv/mirror')), '[core] toplevel', 'absolute path');
});

test('errors: [remote] without site or manifest', (t) => {
  configError(t, () => parse('[core]\ntoplevel = /srv\n'), '[remote]');
  configError(t, () => parse('[core]\ntoplevel = /srv\n[remote]\nmanifest = https://o/m.js.gz\n'), '[remote] site');
  configError(
    t,
    () => parse('[core]\ntoplevel = /srv\n[remote]\nsite = https://o\nmanifest_command = /bin/get\n'),
    '[remote] manifest',
    'manifest_command',
  );
});

test('errors: a manifest URL with another scheme or with credentials', (t) => {
  configError(
    t,
    () => parse(MINIMAL.replace('${site}/manifest.js.gz', 'ftp://o/m.js.gz')),
    '[remote] manifest',
    'http',
  );
  configError(
    t,
    () => parse(MINIMAL.replace('${site}/manifest.js.gz', 'https://me:secret@o/m.js.gz')),
    '[remote] manifest',
    'password',
  );
});

test('errors: values of the wrong kind name the section, the key and what is expected', (t) => {
  configError(
    t,
    () => parse(`${MINIMAL}[pull]\npull_threads = five\n`),
    '[pull] pull_threads',
    'whole number',
    '"five"',
  );
  configError(t, () => parse(`${MINIMAL}[pull]\npull_threads = 2.5\n`), '[pull] pull_threads');
  configError(t, () => parse(`${MINIMAL}[pull]\npull_threads = -1\n`), '[pull] pull_threads');
  configError(t, () => parse(`${MINIMAL}[pull]\npurgeprotect = 150\n`), '[pull] purgeprotect', '0 to 100');
  configError(t, () => parse(`${MINIMAL}[pull]\npurge = maybe\n`), '[pull] purge', 'yes/no');
  configError(t, () => parse(`${MINIMAL}[pull]\nrefresh = 0\n`), '[pull] refresh');
  configError(
    t,
    () => parse(`${MINIMAL}[pull]\npost_update_hook = /bin/hook "unterminated\n`),
    '[pull] post_update_hook',
    'quot',
  );
});

test('errors: the line number is given for a key', (t) => {
  configError(t, () => parse(`${MINIMAL}[pull]\nretries = many\n`), 'line 7');
});

test('errors: bad interpolation', (t) => {
  configError(t, () => parse(MINIMAL.replace('${site}', '${nosuch}')), '[remote] manifest', '${nosuch}');
  configError(t, () => parse(MINIMAL.replace('${site}', '${core:nosuch}')), '[remote] manifest', 'nosuch');
  configError(t, () => parse(MINIMAL.replace('${site}/', '$site/')), '[remote] manifest', 'must be followed by');
  configError(
    t,
    () => parse(`[core]\ntoplevel = /\${a}\na = \${toplevel}\n[remote]\nsite = x\nmanifest = https://o/m\n`),
    'nested',
  );
});

test('errors: the syntax configparser rejects', (t) => {
  configError(t, () => parse(`toplevel = /srv\n${MINIMAL}`), 'line 1', 'section');
  configError(t, () => parse(`${MINIMAL}[pull]\njust some words\n`), 'line 7', 'key = value');
  configError(t, () => parse(`${MINIMAL}[pull]\nretries = 1\nretries = 2\n`), 'retries', 'twice');
  configError(t, () => parse(`${MINIMAL}[core]\nlog = /x\n`), '[core]', 'twice');
});

test('loadPullConfig reads a file and reports a missing one as a config error', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const file = join(dir, 'grokmirror.conf');
  await writeFile(file, GROKMIRROR_STYLE);
  const c = loadPullConfig(file);
  t.is(c.file, file);
  t.true(c.mtimeMs > 0);
  t.true(
    c.warnings.every((w) => w.message.startsWith(file)),
    'warnings name the file',
  );
  configError(t, () => loadPullConfig(join(dir, 'nope.conf')), 'nope.conf', 'does not exist');
});

test('checkToplevel refuses a toplevel that does not exist', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await t.notThrowsAsync(checkToplevel({ core: { ...parse(MINIMAL).core, toplevel: dir } }));
  const err = await t.throwsAsync(checkToplevel({ core: { ...parse(MINIMAL).core, toplevel: join(dir, 'missing') } }));
  t.is((err as { code?: string }).code, 'E_TOPLEVEL');
});

test('the INI reader keeps blank lines inside values and drops trailing ones, like configparser', (t) => {
  const doc = IniDocument.parse('[s]\nk = a\n\n    b\n\n\n[t]\nx = 1\n');
  t.is(doc.get('s', 'k'), 'a\n\nb');
  t.is(doc.get('t', 'x'), '1');
});

test('[pull] socket_mode and socket_group: octal bits (0660 by default) and a group by name or gid', (t) => {
  const plain = parse(MINIMAL);
  t.is(plain.pull.socketMode, 0o660);
  t.is(plain.pull.socketGroup, null);
  const set = parse(`${MINIMAL}[pull]\nsocket_mode = 0620\nsocket_group = root\n`);
  t.is(set.pull.socketMode, 0o620);
  t.is(set.pull.socketGroup, 0);
  t.is(parse(`${MINIMAL}[pull]\nsocket_group = 4242\n`).pull.socketGroup, 4242);
  for (const bad of ['socket_mode = rw-rw----', 'socket_mode = 0999', 'socket_group = no-such-group-here']) {
    const err = t.throws(() => parse(`${MINIMAL}[pull]\n${bad}\n`), { instanceOf: BundlemirrorError });
    t.is(err?.code, 'E_CONFIG', bad);
  }
});
