/**
 * `publish -c FILE`: the file's `[publish]` keys fill in every flag the
 * command line did not give (the command line wins, a list included), and
 * `--config-check` reports what the file says and stops. The keys are made
 * from the options' description (publish-options.ts), the same one commander
 * builds the command from, so each flag has its key by construction.
 */
import type { Command } from 'commander';
import { BundlemirrorError } from '../errors.js';
import { loadPublishConfig, type PublishConfig } from '../origin/publish-config.js';
import { PUBLISH_KEYS } from './publish-options.js';

/**
 * Merges `-c FILE` into the command's flags and returns them, or null when
 * `--config-check` has done its work. Without `-c` only the checks the
 * command line cannot express are made.
 */
export function publishFlags<T extends object>(cmd: Command): T | null {
  const file = cmd.getOptionValue('config') as string | undefined;
  const check = cmd.getOptionValue('configCheck') === true;
  if (check && file === undefined)
    throw new BundlemirrorError('E_USAGE', '--config-check needs -c FILE, the publish config to check');
  let warnings = 0;
  if (file !== undefined) {
    const config = loadPublishConfig(file, PUBLISH_KEYS);
    for (const [attr, value] of Object.entries(config.values)) {
      if (cmd.getOptionValueSource(attr) === 'cli') continue;
      cmd.setOptionValueWithSource(attr, value, 'config');
    }
    warnings = config.warnings.length;
    printConfigWarnings(config, cmd.getOptionValue('quiet') === true && !check);
    if (cmd.getOptionValueSource('bundles') === 'default' && cmd.getOptionValue('out') === undefined)
      throw bundlesRequired(config);
    if (check) {
      for (const k of PUBLISH_KEYS) {
        const v = cmd.getOptionValue(k.attr) as unknown;
        if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
        const source = cmd.getOptionValueSource(k.attr);
        const from = source === 'cli' ? k.flag : source === 'config' ? config.origins[k.attr] : 'default';
        process.stdout.write(`${k.key} = ${Array.isArray(v) ? v.join(' ') : String(v)}    (${from})\n`);
      }
    }
  }
  if (cmd.getOptionValue('toplevel') === undefined)
    throw file === undefined
      ? new BundlemirrorError('E_USAGE', "required option '--toplevel <dir>' not specified")
      : noToplevel(file);
  if (check) {
    process.stdout.write(`${file}: usable (${warnings} warning${warnings === 1 ? '' : 's'})\n`);
    return null;
  }
  return cmd.opts() as T;
}

/** A config file's warnings; with --quiet, not the keys it sets that nothing reads. */
export function printConfigWarnings(config: PublishConfig, quiet: boolean): void {
  for (const w of config.warnings)
    if (!quiet || w.kind !== 'unused') process.stderr.write(`bundlemirror: warning: ${w.message}\n`);
}

export function bundlesRequired(config: PublishConfig): BundlemirrorError {
  return new BundlemirrorError('E_CONFIG', `${config.file}: [publish] bundles is required`, {
    hint: 'bundles = the directory publish writes the tree into (what serve --bundles serves)',
  });
}

export function noToplevel(file: string): BundlemirrorError {
  return new BundlemirrorError(
    'E_USAGE',
    `${file} sets no toplevel ([publish] toplevel or [core] toplevel) and --toplevel is not given`,
  );
}
