import { resolve } from 'node:path';
import type { Command } from 'commander';
import { cloneRepo, resolveCloneUrl } from '../clone/clone.js';
import { progressBars } from './progress-bars.js';
import { untilInterrupted } from './interrupt.js';
import { formatBytes } from '../format/bytes.js';

export function registerClone(program: Command): void {
  program
    .command('clone')
    .description('clone one repository from its bundles over resumable HTTP, then git fetch the rest (rerun to continue)')
    .argument('<url>', "the repository's URL on the origin: its page, index.json or bundle-list")
    .argument('<dir>', 'directory to clone into')
    .option('--git-url <url>', 'where to git fetch the remainder (default: the origin /git/ URL)')
    .option('--no-progress', 'no progress output')
    .action(async (url: string, dir: string, flags: { gitUrl?: string; progress: boolean }) => {
      const target = resolveCloneUrl(url, flags.gitUrl);
      const bars = flags.progress ? progressBars() : null;
      try {
        const r = await untilInterrupted(
          (signal) =>
            cloneRepo(target, resolve(dir), {
              signal,
              log: (l) => process.stderr.write(l + '\n'),
              onProgress: bars ? (file, p) => bars.update(file, file.slice(0, 16), p) : undefined,
            }),
          'interrupted: rerun the same command to continue',
        );
        bars?.stop();
        process.stdout.write(
          `cloned ${target.repo} into ${r.dir} (branch ${r.branch}): ${r.bundles} bundle(s), downloaded ${formatBytes(r.bytesDownloaded)}` +
            `${r.bytesResumed ? `, resumed ${formatBytes(r.bytesResumed)}` : ''}${r.fetched ? ', then fetched from origin' : ''}\n`,
        );
      } finally {
        bars?.stop();
      }
    });
}
