import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { printable } from '../format/untrusted.js';
import { cloneRepo, resolveCloneUrl, type CloneTarget } from '../clone/clone.js';
import { resolveFileCloneUrl } from '../clone/file-target.js';
import { askService, describeJob } from '../on-demand/client.js';
import { progressBars } from './progress-bars.js';
import { retryForOption, waitMessages } from './wait-messages.js';
import { untilInterrupted } from './interrupt.js';
import { formatBytes } from '../format/bytes.js';

export function registerClone(program: Command): void {
  program
    .command('clone')
    .description(
      'clone one repository from its bundles over resumable HTTP, then git fetch the rest (rerun to continue)',
    )
    .argument(
      '<url>',
      "the repository's URL on the origin: its page, index.json or bundle-list, or file:///… in a mounted published tree (with --via: the upstream repository URL)",
    )
    .argument('<dir>', 'directory to clone into')
    .option('--git-url <url>', 'where to git fetch the remainder (default: the origin /git/ URL)')
    .option(
      '--via <service>',
      'ask this on-demand service (serve --on-demand) to bundle the upstream URL; origin stays the upstream',
    )
    .option(
      '--retry-for <duration>',
      'keep retrying a failing server this long after the last byte arrived (30s, 10m, 1h; default 5m)',
      retryForOption,
    )
    .option('--no-progress', 'no progress output')
    .action(
      async (
        url: string,
        dir: string,
        flags: { gitUrl?: string; via?: string; progress: boolean; retryFor?: number },
      ) => {
        const bars = flags.progress ? progressBars() : null;
        const onWait = waitMessages((l) => (bars ? bars.log(l) : process.stderr.write(l + '\n')));
        try {
          const r = await untilInterrupted(
            async (signal) => {
              let target: CloneTarget;
              if (flags.via !== undefined) {
                let last = '';
                const mirror = await askService(flags.via, url, {
                  signal,
                  onUpdate: (job) => {
                    const line = describeJob(job);
                    if (flags.progress && line !== last) process.stderr.write(`${printable(line)}\n`);
                    last = line;
                  },
                });
                target = { indexUrl: mirror.indexUrl, repo: mirror.path, gitUrl: flags.gitUrl ?? url };
              } else if (/^file:/i.test(url)) target = await resolveFileCloneUrl(new URL(url), flags.gitUrl);
              else target = resolveCloneUrl(url, flags.gitUrl);
              const done = await cloneRepo(target, resolve(dir), {
                signal,
                retryForMs: flags.retryFor,
                onWait: (w) => onWait(null, w),
                log: (l) => (bars ? bars.log(printable(l)) : process.stderr.write(printable(l) + '\n')),
                onProgress: bars ? (file, p) => bars.update(file, file.slice(0, 16), p) : undefined,
              });
              return { ...done, target };
            },
            {
              keptIn: () => [join(resolve(dir), '.git/bundlemirror/partial'), join(resolve(dir), '.git/bundlemirror')],
              rerun: 'rerun clone with the same arguments to resume',
            },
          );
          bars?.stop();
          const target = r.target;
          process.stdout.write(
            `cloned ${flags.via !== undefined ? url : target.repo} into ${r.dir} (branch ${r.branch}): ${r.bundles} bundle(s), downloaded ${formatBytes(r.bytesDownloaded)}` +
              `${r.bytesResumed ? `, resumed ${formatBytes(r.bytesResumed)}` : ''}${r.fetched ? ', then fetched from origin' : flags.via !== undefined ? `; ${url} was unreachable, the clone holds what the bundles had` : ''}\n`,
          );
        } finally {
          bars?.stop();
        }
      },
    );
}
