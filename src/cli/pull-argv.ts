/**
 * `pull`'s usual command lines read without commander. A cron'd poll of an
 * unchanged or barely changed collection is over in a few hundred
 * milliseconds, and loading and building the commander program was a tenth
 * of that. This reads the options a scheduled pull uses, each written as
 * `--help` shows it, into the flags commander would hand the action; any
 * other command line (help, a hidden grok-pull flag, a short-flag cluster,
 * a stray word, a value that looks like an option, a bad duration) returns
 * null and goes to commander, which decides and words the usage error. The
 * property test (test/pull-argv.test.ts) holds the two together.
 */
import { valuedOptionAt } from './argv-option.js';
import { retryForOption } from './wait-messages.js';

/** What `registerPull`'s commander options parse into (commander's camelCase names). */
export interface PullFlags {
  config: string;
  force?: boolean;
  /** undefined: as the config says; true: -p; false: --no-purge. */
  purge?: boolean;
  mtimeCheck: boolean;
  continuous?: boolean;
  forcePurge?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  json?: boolean;
  progress: boolean;
  daemon?: boolean;
  retryFor?: number;
  configCheck?: boolean;
  pretty?: boolean;
  reuseExistingRepos: boolean;
  verifyMirror?: boolean;
  verifySubpath?: string;
  logfile?: string;
}

type Switch = 'force' | 'purge' | 'mtimeCheck' | 'continuous' | 'forcePurge' | 'verbose' | 'quiet' | 'json';

/** The options without a value, by each of their names. */
const SWITCHES = new Map<string, [Switch | 'progress' | 'daemon' | 'configCheck', boolean]>([
  ['--force', ['force', true]],
  ['-p', ['purge', true]],
  ['--purge', ['purge', true]],
  ['--no-purge', ['purge', false]],
  ['-n', ['mtimeCheck', false]],
  ['--no-mtime-check', ['mtimeCheck', false]],
  ['--force-purge', ['forcePurge', true]],
  ['--no-progress', ['progress', false]],
  ['-v', ['verbose', true]],
  ['--verbose', ['verbose', true]],
  ['-q', ['quiet', true]],
  ['--quiet', ['quiet', true]],
  ['--json', ['json', true]],
  ['--daemon', ['daemon', true]],
  ['-o', ['continuous', true]],
  ['--continuous', ['continuous', true]],
  ['--config-check', ['configCheck', true]],
]);

/** The flags commander would parse `args` (what follows `pull`) into, or null: then commander must. */
export function pullFlagsFromArgv(args: readonly string[]): PullFlags | null {
  const flags: Omit<PullFlags, 'config'> & { config?: string } = {
    mtimeCheck: true,
    progress: true,
    reuseExistingRepos: true,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const set = SWITCHES.get(arg);
    if (set) {
      flags[set[0]] = set[1];
      continue;
    }
    const option = valuedOptionAt(args, i);
    if (!option) return null;
    const { name, value } = option;
    i = option.next;
    if (name === '-c' || name === '--config') flags.config = value;
    else if (name === '--retry-for') {
      try {
        flags.retryFor = retryForOption(value);
      } catch {
        return null;
      }
    } else return null;
  }
  if (flags.config === undefined) return null;
  return flags as PullFlags;
}
