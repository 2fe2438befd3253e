/**
 * commander options built from their description in publish-options.ts;
 * the options of an s3:// target are shared by publish and gc.
 */
import { Option, type Command } from 'commander';
import { STORE_OPTIONS, type OptionSpec } from './publish-options.js';

export function commanderOption(spec: OptionSpec): Option {
  const o = new Option(spec.flags, spec.description);
  if (spec.repeatable) o.argParser((value: string, previous: string[]) => [...previous, value]);
  if (spec.default !== undefined) o.default(Array.isArray(spec.default) ? [] : spec.default, spec.defaultHelp);
  if (spec.hidden) o.hideHelp();
  return o;
}

export function addStoreOptions(cmd: Command): Command {
  for (const spec of STORE_OPTIONS) cmd.addOption(commanderOption(spec));
  return cmd;
}
