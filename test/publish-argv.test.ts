import test from 'ava';
import { Command } from 'commander';
import { registerPublish } from '../src/cli/publish.js';
import { publishArgsFromArgv } from '../src/cli/publish-argv.js';
import { seededRandom as rng } from '../src/faults/random.js';
import { VERSION } from '../src/version.js';

/**
 * The program main.ts builds, with `publish` alone: the repositories and flags
 * its action would get, or null when commander refuses the command line.
 * Commander's own flags, as the action's `publishFlags` sees them after its checks.
 */
async function commanderArgs(args: string[]): Promise<{ repos: string[]; flags: Record<string, unknown> } | null> {
  const program = new Command()
    .name('bundlemirror')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
  registerPublish(program);
  let parsed: { repos: string[]; flags: Record<string, unknown> } | null = null;
  program.commands[0]!.action((repos: string[], f: Record<string, unknown>) => {
    parsed = { repos: [...repos], flags: { ...f } };
  });
  try {
    await program.parseAsync(['publish', ...args], { from: 'user' });
  } catch {
    // a usage error or help
    return null;
  }
  // publishFlags refuses a command line without a toplevel (and, with -c, reads the file)
  const flags = (parsed as { flags: Record<string, unknown> } | null)?.flags;
  if (!flags || flags.toplevel === undefined || flags.config !== undefined || flags.configCheck) return null;
  return parsed;
}

function publishOptionWords(): string[] {
  const program = new Command();
  registerPublish(program);
  return program.commands[0]!.options.flatMap((o) => [o.short, o.long].filter((f): f is string => f !== undefined));
}

/** Words that are not `publish` options as --help spells them, or are spelled otherwise. */
const ODD_WORDS = [
  '-h',
  '--help',
  '-V',
  '--version',
  '--',
  '-',
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
  const options = publishOptionWords();
  // the hook's options more often than the rest, so long lines of them are read by hand too
  const usual = ['-q', '--quiet', '-t', '--toplevel', '--bundles', '-o', '--out', '--sign-key'];
  let fast = 0;
  let declined = 0;
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const args: string[] = [];
    const n = Math.floor(r() * 6);
    for (let k = 0; k < n; k++) {
      const roll = r();
      args.push(roll < 0.4 ? pick(usual) : roll < 0.55 ? pick(options) : roll < 0.7 ? pick(ODD_WORDS) : pick(VALUES));
    }
    // most with a toplevel, anywhere in the line
    if (r() < 0.8) args.splice(Math.floor(r() * (args.length + 1)), 0, pick(['-t', '--toplevel']), pick(VALUES));
    const mine = publishArgsFromArgv(args);
    const theirs = await commanderArgs(args);
    if (mine !== null) {
      fast++;
      t.deepEqual({ repos: mine.repos, flags: { ...mine.flags } }, theirs, `publish ${JSON.stringify(args)}`);
    } else if (theirs === null) refused++;
    else declined++;
  }
  // every side of the boundary was exercised
  t.true(
    fast > 300 && declined > 100 && refused > 300,
    `${fast} read by hand, ${declined} left to commander, ${refused} refused`,
  );
});

test("the command lines a post-receive hook uses are read without commander; a config file's are not", (t) => {
  for (const args of [
    ['--quiet', '--toplevel', '/srv/git', '--out', '/srv/pub', '/srv/git/a.git'],
    ['-q', '-t', '/srv/git', '--bundles', '/srv/pub', '/srv/git/a.git', '/srv/git/b.git'],
    ['--toplevel=/srv/git', '--bundles=s3://bucket/pub', '--sign-key', '/etc/key', 'a.git'],
    ['--toplevel', '/srv/git'],
  ])
    t.not(publishArgsFromArgv(args), null, args.join(' '));
  // -c FILE: the file's keys come from commander's list of options
  t.is(publishArgsFromArgv(['-c', '/etc/bundlemirror/publish.conf', '--quiet', '/srv/git/a.git']), null);
  t.is(publishArgsFromArgv(['--quiet', '/srv/git/a.git']), null);
});
