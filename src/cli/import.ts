/**
 * `bundlemirror import`: verify an offline kit and apply it as a pull
 * would, without the network.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ExitStatus } from '../errors.js';
import { importKit, type ImportReport } from '../kit/import.js';
import { readPullConfig } from '../replica/config/config.js';
import { untilInterrupted } from './interrupt.js';
import { createPullLog } from '../replica/log.js';
import { summary } from './pull.js';

interface ImportFlags {
  config: string;
  online?: boolean;
  force?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('verify an offline kit made by export and apply it to a replica, as pull would, without the network')
    .argument('<kit>', 'the kit file (kit.tar)')
    .requiredOption('-c, --config <file>', 'replica config (grokmirror.conf format)')
    .option('--online', 'close gaps the kit leaves with git fetch from [bundlemirror] git_url')
    .option('--force', 'check every repository the kit carries even when its fingerprint matches')
    .option('-v, --verbose', 'explain every decision')
    .option('-q, --quiet', 'print only warnings, errors and the summary')
    .action(async (kit: string, flags: ImportFlags) => {
      const config = await readPullConfig(flags.config);
      const log = createPullLog({
        file: config.core.log,
        level: config.core.loglevel,
        console: flags.quiet ? 'quiet' : flags.verbose ? 'debug' : 'info',
      });
      let report: ImportReport;
      try {
        report = await untilInterrupted((signal) =>
          importKit(config, { kit: resolve(kit), online: flags.online, force: flags.force, log, signal }),
        );
      } finally {
        await log.flush();
      }
      process.stdout.write(
        `${summary(report.pull)}${report.older.length ? `; ${report.older.length} older than this replica, left alone` : ''}\n`,
      );
      if (report.pull.failed.length || report.pull.problems.length) process.exitCode = ExitStatus.repoFailed;
    });
}
