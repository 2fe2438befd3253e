/**
 * Entry point: one commander program, one file per command. Errors of our
 * own type print their message and hint and exit with their status; anything
 * else is a bug and prints its stack.
 */
import { Command, CommanderError } from 'commander';
import { BundlemirrorError, ExitStatus } from '../errors.js';
import { registerPublish } from './publish.js';
import { registerServe } from './serve.js';
import { registerPull } from './pull.js';
import { registerClone } from './clone.js';
import { registerStatus } from './status.js';
import { registerFsck } from './fsck.js';
import { registerExport } from './export.js';
import { registerImport } from './import.js';
import { registerGc } from './gc.js';

const program = new Command();
program
  .name('bundlemirror')
  .description('Mirror collections of git repositories over networks that break.')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError('(run with --help for usage)');

registerPublish(program);
registerServe(program);
registerPull(program);
registerClone(program);
registerStatus(program);
registerFsck(program);
registerExport(program);
registerImport(program);
registerGc(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : ExitStatus.usage;
  } else if (err instanceof BundlemirrorError) {
    process.stderr.write(`bundlemirror: ${err.describe()}\n`);
    process.exitCode = err.exitStatus;
  } else {
    process.stderr.write(`bundlemirror: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 70;
  }
}
