import test from 'ava';
import { registerPull } from '../src/cli/pull.js';
import { pullFlagsFromArgv } from '../src/cli/pull-argv.js';
import { seededRandom as rng } from '../src/faults/random.js';
import { commanderParses, GENERIC_ODD_WORDS, heldToCommander, optionWords } from './support/cli.js';

/** The flags `pull`'s action would get from commander, or null when commander refuses the line. */
async function commanderFlags(args: string[]): Promise<Record<string, unknown> | null> {
  let flags: Record<string, unknown> | null = null;
  const parsed = await commanderParses(registerPull, 'pull', args, (f: Record<string, unknown>) => {
    flags = { ...f };
  });
  return parsed ? flags : null;
}

/** Words that are not `pull` options as --help spells them, or are spelled otherwise. */
const ODD_WORDS = [
  ...GENERIC_ODD_WORDS,
  'extra',
  '-qv',
  '-cfile.conf',
  '-c=file.conf',
  '--progress',
  '--mtime-check',
  '--conf',
  '--purge=yes',
  '--quiet=1',
  '--config=',
  '--config=/etc/grokmirror/pull.conf',
  '--config=-q',
  '--retry-for=5m',
  '--retry-for=0',
  '--retry-for=soon',
  '--retry-for=',
];

const VALUES = [
  '/etc/grokmirror/pull.conf',
  'pull.conf',
  '',
  ' ',
  '5m',
  '30s',
  '1h',
  '0',
  '-1s',
  'soon',
  '-q',
  '--json',
  '=',
  'pull',
];

test('the hand-read pull flags are exactly what commander parses, whenever the hand reader answers', async (t) => {
  const r = rng(29);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const options = optionWords(registerPull);
  const lines = function* () {
    for (let i = 0; i < 3000; i++) {
      const args: string[] = [];
      const n = Math.floor(r() * 5);
      for (let k = 0; k < n; k++) {
        const roll = r();
        args.push(roll < 0.65 ? pick(options) : roll < 0.85 ? pick(ODD_WORDS) : pick(VALUES));
      }
      // most with a config, anywhere in the line
      if (r() < 0.8) args.splice(Math.floor(r() * (args.length + 1)), 0, pick(['-c', '--config']), pick(VALUES));
      yield args;
    }
  };
  await heldToCommander(
    t,
    'pull',
    lines(),
    (args) => {
      const mine = pullFlagsFromArgv(args);
      return mine && { ...mine };
    },
    commanderFlags,
  );
});

test('the command lines a scheduled pull uses are read without commander', (t) => {
  for (const args of [
    ['-c', 'pull.conf'],
    ['-c', '/etc/grokmirror/pull.conf', '-q', '--no-progress'],
    ['--config=pull.conf', '--json'],
    ['--config', 'pull.conf', '--retry-for', '10m', '-v'],
    ['-c', 'pull.conf', '--daemon'],
    ['-o', '-n', '-p', '-c', 'pull.conf'],
    ['-c', 'pull.conf', '--no-purge', '--force-purge', '--force'],
    ['-c', 'pull.conf', '--config-check'],
  ])
    t.not(pullFlagsFromArgv(args), null, args.join(' '));
});
