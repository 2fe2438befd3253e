/**
 * Entry point: one commander program, one file per command. Errors of our
 * own type print their message and hint and exit with their status; anything
 * else is a bug and prints its stack.
 */
import type { Command } from 'commander';
import { VERSION } from '../version.js';

type Register = (program: Command) => void;

/**
 * Each command's module is loaded only when that command runs: a
 * post-receive hook calling `publish` should not pay for the HTTP server,
 * the downloader and the daemon. `--help` and unknown words load them all.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  publish: async () => (await import('./publish.js')).registerPublish,
  serve: async () => (await import('./serve.js')).registerServe,
  pull: async () => (await import('./pull.js')).registerPull,
  clone: async () => (await import('./clone.js')).registerClone,
  status: async () => (await import('./status.js')).registerStatus,
  fsck: async () => (await import('./fsck.js')).registerFsck,
  export: async () => (await import('./export.js')).registerExport,
  import: async () => (await import('./import.js')).registerImport,
  gc: async () => (await import('./gc.js')).registerGc,
};

// `--version` is what scripts and hooks probe with: answer before loading anything else
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  process.stdout.write(VERSION + '\n');
} else {
  try {
    await run();
  } catch (err) {
    (await import('./failure.js')).fail(err);
  }
}

async function run(): Promise<void> {
  const word = process.argv[2];
  // a scheduled `pull -c FILE` is what runs most often: its usual flags are read without commander
  if (word === 'pull') {
    const { pullFlagsFromArgv, runPull } = await import('./pull.js');
    const flags = pullFlagsFromArgv(process.argv.slice(3));
    if (flags) return runPull(flags);
  }
  // and so is a post-receive hook's `publish --toplevel DIR --bundles DIR REPO`
  if (word === 'publish') {
    const { publishArgsFromArgv } = await import('./publish-argv.js');
    const args = publishArgsFromArgv(process.argv.slice(3));
    if (args) return (await import('./publish-run.js')).runPublish(args.repos, args.flags);
  }
  const { Command, CommanderError } = await import('commander');
  const program = new Command();
  program
    .name('bundlemirror')
    .description('Mirror collections of git repositories over networks that break.')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  const wanted = word !== undefined && Object.hasOwn(COMMANDS, word) ? [COMMANDS[word]!] : Object.values(COMMANDS);
  for (const load of wanted) (await load())(program);

  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    // commander has printed the usage problem (or the help) already
    if (!(err instanceof CommanderError)) throw err;
    const { ExitStatus } = await import('../errors.js');
    process.exitCode = err.exitCode === 0 ? 0 : ExitStatus.usage;
  }
}
