/**
 * The command lines a post-receive hook runs, `publish -c FILE --quiet REPO`
 * or `publish [--quiet] --toplevel DIR --bundles DIR REPO`, read without commander: a hook's publish of one
 * repository is over in well under a second, and building the commander
 * program is a part of that every push pays. This reads those options, each
 * written as `--help` shows it, into the flags commander would hand the
 * action, with the defaults publish-options.ts gives both and `-c FILE`
 * merged in as publish-settings.ts
 * merges it (the command line wins); any other command line (help,
 * `--config-check`, another flag, a short-flag cluster, `--`, a value that
 * looks like an option) returns null and goes to commander. The property test (test/publish-argv.test.ts) holds the two
 * together.
 */
import { loadPublishConfig } from '../origin/publish-config.js';
import { valuedOptionAt } from './argv-option.js';
import { PUBLISH_KEYS, publishDefaults } from './publish-options.js';
import { bundlesRequired, noToplevel, printConfigWarnings } from './publish-settings.js';
import type { PublishFlags } from './publish-run.js';

export interface PublishArgs {
  repos: string[];
  flags: PublishFlags;
}

type Valued = 'config' | 'toplevel' | 'bundles' | 'out' | 'signKey';

const VALUED = new Map<string, Valued>([
  ['-c', 'config'],
  ['--config', 'config'],
  ['-t', 'toplevel'],
  ['--toplevel', 'toplevel'],
  ['--bundles', 'bundles'],
  ['-o', 'out'],
  ['--out', 'out'],
  ['--sign-key', 'signKey'],
]);

/**
 * The repositories and flags commander would parse `args` (what follows
 * `publish`) into, with FILE of `-c FILE` merged in, or null: then commander
 * must. Throws what publish-settings.ts throws for that file.
 */
export function publishArgsFromArgv(args: readonly string[]): PublishArgs | null {
  const flags = publishDefaults() as unknown as Omit<PublishFlags, 'toplevel'> & { toplevel?: string; config?: string };
  const repos: string[] = [];
  /** What the command line set: a config file's value does not replace these. */
  const given = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) {
      repos.push(arg);
      continue;
    }
    if (arg === '-q' || arg === '--quiet') {
      flags.quiet = true;
      given.add('quiet');
      continue;
    }
    const option = valuedOptionAt(args, i);
    const attr = option && VALUED.get(option.name);
    if (!attr) return null;
    i = option.next;
    flags[attr] = option.value;
    given.add(attr);
  }
  const file = flags.config;
  if (file === undefined) {
    // without it commander's action refuses the command line, in its words
    if (flags.toplevel === undefined) return null;
    return { repos, flags: flags as PublishFlags };
  }
  const config = loadPublishConfig(file, PUBLISH_KEYS);
  const set = flags as Record<string, unknown>;
  for (const [attr, value] of Object.entries(config.values)) if (!given.has(attr)) set[attr] = value;
  printConfigWarnings(config, flags.quiet === true);
  if (!given.has('bundles') && config.values.bundles === undefined && flags.out === undefined)
    throw bundlesRequired(config);
  if (flags.toplevel === undefined) throw noToplevel(file);
  return { repos, flags: flags as PublishFlags };
}
