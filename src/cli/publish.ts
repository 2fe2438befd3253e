/**
 * `publish`'s command line, read by commander; the work is in publish-run.ts.
 */
import { Option, type Command } from 'commander';
import { DEFAULT_CHAIN_POLICY } from '../origin/chain.js';
import { addStoreOptions } from './store-options.js';
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
    )
    .option(
      '-c, --config <file>',
      'publish config: [publish] keys named as these flags (base_url = ...); flags given here win',
    )
    .option(
      '--config-check',
      'read the config, report every problem and the settings in effect, and exit (0: usable, 2: not)',
    )
    .option('-t, --toplevel <dir>', 'directory holding the bare repositories (any depth)')
    .option(
      '--bundles <dir>',
      'where to write the published tree (a directory serve --bundles serves, or s3://BUCKET/PREFIX)',
      'bundles',
    )
    .addOption(new Option('-o, --out <dir>', 'the old name of --bundles').hideHelp())
    .option('--base-url <url>', 'URL at which --bundles is served; bundle-list files then carry absolute URIs')
    .option('--ignore <glob>', 'leave out repositories whose manifest path matches (repeatable)', collect, [])
    .option('--wait <seconds>', 'how long to wait for another publish into the same --bundles', '300')
    .option(
      '--max-incrementals <n>',
      'incremental bundles on top of one base before a new base',
      String(DEFAULT_CHAIN_POLICY.maxIncrementals),
    )
    .option(
      '--chain-ratio <r>',
      'new base once incrementals add up to this fraction of the base',
      String(DEFAULT_CHAIN_POLICY.maxChainRatio),
    )
    .option(
      '--grace-days <d>',
      'how long superseded bundles stay listed and on disk',
      String(DEFAULT_CHAIN_POLICY.graceMs / 86_400_000),
    )
    .option(
      '--slices <n>',
      'publish a new base as a chain of n history slices, so a replica resolves one while the next downloads (1: one base)',
      String(DEFAULT_CHAIN_POLICY.slices),
    )
    .option(
      '--slice-min-mib <m>',
      'slice only repositories storing at least this many MiB',
      String((DEFAULT_CHAIN_POLICY.sliceMinBytes ?? 0) / 2 ** 20),
    )
    .option(
      '--parts <n>',
      "publish a new base's pack in up to n parts a replica indexes while the rest downloads (1: one piece)",
      String(DEFAULT_CHAIN_POLICY.parts),
    )
    .option(
      '--parts-min-mib <m>',
      'cut into parts only the bases of repositories storing at least this many MiB',
      String((DEFAULT_CHAIN_POLICY.partsMinBytes ?? 0) / 2 ** 20),
    )
    .option(
      '--sign-key <file>',
      'SSH private key: sign manifest.js.gz and every index.json (ssh-keygen -Y sign -n bundlemirror)',
    )
    .option('-q, --quiet', 'print only the summary and errors')
    .option('--json', 'print the report as JSON on stdout instead of the summary (implies --quiet)')
    .option(
      '-x, --remove',
      "take the repositories named as REPO out of the manifest (deleted from the toplevel; grok-manifest's -x), publishing nothing else",
    )
    .option('--force', 'with -x: remove even a repository still on disk (a full publish adds it back)')
    .option(
      '--notify <url>',
      'then tell this replica daemon which repositories changed, e.g. http://replica:8090/notify (repeatable)',
      collect,
      [],
    )
    .option('--notify-token-file <file>', "bearer token for --notify (the replicas' [bundlemirror] notify_token_file)")
    .action(async (repos: string[], _given: PublishFlags, cmd: Command) => {
      const flags = publishFlags<PublishFlags>(cmd);
      if (!flags) return;
      return runPublish(repos, flags);
    });
  addStoreOptions(cmd);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
