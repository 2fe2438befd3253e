import test from 'ava';
import { Command } from 'commander';
import { registerPublish } from '../src/cli/publish.js';
import { publishArgsFromArgv } from '../src/cli/publish-argv.js';
import { seededRandom as rng } from '../src/faults/random.js';
import { publishFlags } from '../src/cli/publish-settings.js';
import {
  PUBLISH_KEYS,
  PUBLISH_OPTIONS,
  STORE_OPTIONS,
  attributeOf,
  publishDefaults,
} from '../src/cli/publish-options.js';
import type { BundlemirrorError } from '../src/errors.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commanderParses, GENERIC_ODD_WORDS, heldToCommander, optionWords } from './support/cli.js';

type Parsed = { repos: string[]; flags: Record<string, unknown> } | { code: string };

/**
 * The program main.ts builds, with `publish` alone: the repositories and flags
 * its action gets from publishFlags (`-c FILE` merged in), the code of the
 * error it throws, or null when commander refuses the command line.
 */
async function commanderArgs(args: string[]): Promise<Parsed | null> {
  let parsed: Parsed | null = null;
  const ok = await commanderParses(registerPublish, 'publish', args, (repos: string[], _f: unknown, cmd: Command) => {
    try {
      const flags = quietly(() => publishFlags<Record<string, unknown>>(cmd));
      if (flags) parsed = { repos: [...repos], flags: { ...flags } };
    } catch (err) {
      parsed = { code: (err as BundlemirrorError).code };
    }
  });
  return ok ? parsed : null;
}

/** `parse()` with what it prints (--config-check's report, a config file's warnings) kept off the test's output. */
function quietly<T>(parse: () => T): T {
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = process.stderr.write = () => true;
  try {
    return parse();
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** What the hand reader makes of `args`, in the same terms. */
function handArgs(args: string[]): Parsed | null {
  try {
    const mine = publishArgsFromArgv(args);
    return mine && { repos: mine.repos, flags: { ...mine.flags } };
  } catch (err) {
    return { code: (err as BundlemirrorError).code };
  }
}

/** Words that are not `publish` options as --help spells them, or are spelled otherwise. */
const ODD_WORDS = [
  ...GENERIC_ODD_WORDS,
  '-qx',
  '-tdir',
  '-t=dir',
  '--top',
  '--quiet=1',
  '--toplevel=',
  '--toplevel=/srv/git',
  '--toplevel=-q',
  '--out=/srv/pub',
  '--bundles=s3://bucket/pub',
  '--sign-key=',
];

const VALUES = ['/srv/git', 'git', '', ' ', '/srv/git/a.git', 'a.git', '-q', '--json', '=', 'publish', 's3://b/p'];

test('the hand-read publish command line is exactly what commander parses, whenever the hand reader answers', async (t) => {
  const r = rng(31);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const options = optionWords(registerPublish);
  // the hook's options more often than the rest, so long lines of them are read by hand too
  const usual = ['-q', '--quiet', '-t', '--toplevel', '--bundles', '-o', '--out', '--sign-key'];
  // config files: a whole one, one without bundles, one without toplevel, one that is not there
  const dir = await mkdtemp(join(tmpdir(), 'bm-publish-argv-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const configs = ['whole', 'no-bundles', 'no-toplevel', 'missing'].map((n) => join(dir, `${n}.conf`));
  await writeFile(
    configs[0]!,
    '[publish]\ntoplevel = /srv/git\nbundles = /srv/pub\nbase_url = https://mirror.example/pub\n' +
      'notify = http://replica:8090/notify\nquiet = yes\nwait = 60\nsign_key = /etc/key\n',
  );
  await writeFile(configs[1]!, '[publish]\ntoplevel = /srv/git\nslices = 3\n');
  await writeFile(configs[2]!, '[publish]\nbundles = /srv/pub\n');
  const lines = function* () {
    for (let i = 0; i < 3000; i++) {
      const args: string[] = [];
      const n = Math.floor(r() * 6);
      for (let k = 0; k < n; k++) {
        const roll = r();
        args.push(roll < 0.4 ? pick(usual) : roll < 0.55 ? pick(options) : roll < 0.7 ? pick(ODD_WORDS) : pick(VALUES));
      }
      // most with a toplevel or a config file, anywhere in the line
      const with_ = r();
      if (with_ < 0.5) args.splice(Math.floor(r() * (args.length + 1)), 0, pick(['-t', '--toplevel']), pick(VALUES));
      else if (with_ < 0.8)
        args.splice(Math.floor(r() * (args.length + 1)), 0, pick(['-c', '--config']), pick(configs));
      yield args;
    }
  };
  await heldToCommander(
    t,
    'publish',
    lines(),
    (args) => quietly(() => handArgs(args)),
    commanderArgs,
    (theirs) => theirs === null || 'code' in theirs,
  );
});

test('the command lines a post-receive hook uses are read without commander', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bm-publish-argv-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const conf = join(dir, 'publish.conf');
  await writeFile(conf, '[publish]\ntoplevel = /srv/git\nbundles = /srv/pub\n');
  t.not(publishArgsFromArgv(['-c', conf, '--quiet', '/srv/git/a.git']), null);
  for (const args of [
    ['--quiet', '--toplevel', '/srv/git', '--out', '/srv/pub', '/srv/git/a.git'],
    ['-q', '-t', '/srv/git', '--bundles', '/srv/pub', '/srv/git/a.git', '/srv/git/b.git'],
    ['--toplevel=/srv/git', '--bundles=s3://bucket/pub', '--sign-key', '/etc/key', 'a.git'],
    ['--toplevel', '/srv/git'],
  ])
    t.not(publishArgsFromArgv(args), null, args.join(' '));
  t.is(publishArgsFromArgv(['--quiet', '/srv/git/a.git']), null);
  t.is(publishArgsFromArgv(['-c', 'publish.conf', '--config-check']), null);
});

test("the command commander builds has the options' description: each option's attribute, default and key", (t) => {
  const program = new Command();
  registerPublish(program);
  const options = program.commands[0]!.options;
  const specs = [...PUBLISH_OPTIONS, ...STORE_OPTIONS];
  t.deepEqual(
    options.map((o) => o.flags),
    specs.map((s) => s.flags),
  );
  t.deepEqual(
    options.map((o) => o.attributeName()),
    specs.map(attributeOf),
  );
  const defaults = publishDefaults();
  for (const o of options) t.deepEqual(o.defaultValue as unknown, defaults[o.attributeName()], o.flags);
  // a key for every option but the ones that describe one run, named as its long flag
  t.deepEqual(
    PUBLISH_KEYS.map((k) => k.flag),
    [
      '--toplevel',
      '--bundles',
      '--base-url',
      '--ignore',
      '--wait',
      '--max-incrementals',
      '--chain-ratio',
      '--grace-days',
      '--slices',
      '--slice-min-mib',
      '--parts',
      '--parts-min-mib',
      '--sign-key',
      '--quiet',
      '--notify',
      '--notify-token-file',
      '--state',
      '--s3-path-style',
      '--s3-part-size',
    ],
  );
  const key = (flag: string) => PUBLISH_KEYS.find((k) => k.flag === flag)!;
  t.like(key('--base-url'), { key: 'base_url', attr: 'baseUrl', kind: 'value', url: true, path: false });
  t.like(key('--notify'), { key: 'notify', kind: 'list', url: true });
  t.like(key('--ignore'), { kind: 'list', url: false, number: false });
  t.like(key('--sign-key'), { kind: 'value', path: true });
  t.like(key('--s3-part-size'), { key: 's3_part_size', attr: 's3PartSize', number: true });
  t.like(key('--s3-path-style'), { kind: 'switch' });
  t.like(key('--bundles'), { path: true, number: false });
});
