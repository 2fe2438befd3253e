/**
 * `publish`'s command line, read by commander from the options described in
 * publish-options.ts; the work is in publish-run.ts.
 */
import type { Command } from 'commander';
import { PUBLISH_OPTIONS } from './publish-options.js';
import { addStoreOptions, commanderOption } from './commander-options.js';
import { publishFlags } from './publish-settings.js';
import { runPublish, type PublishFlags } from './publish-run.js';

export function registerPublish(program: Command): void {
  const cmd = program
    .command('publish')
    .description(
      'publish bare repositories as a static tree: manifest.js.gz, per-repository index.json, bundle-list and bundles',
    )
    .argument(
      '[repo...]',
      'publish only these repositories (disk path, e.g. $PWD from a hook, or manifest path like /pub/a.git)',
    );
  for (const spec of PUBLISH_OPTIONS) cmd.addOption(commanderOption(spec));
  cmd.action(async (repos: string[], _given: PublishFlags, cmd: Command) => {
    const flags = publishFlags<PublishFlags>(cmd);
    if (!flags) return;
    return runPublish(repos, flags);
  });
  addStoreOptions(cmd);
}
