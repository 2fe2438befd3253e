/**
 * `publish -c FILE`: the file's `[publish]` keys fill in every flag the
 * command line did not give (the command line wins, a list included), and
 * `--config-check` reports what the file says and stops. The keys are made
 * from the command's own flags, so each flag has its key by construction
 * (the hook's commander-free reader keeps a copy of the list,
 * publish-keys.ts, held to this one by a test).
 */
import type { Command, Option } from 'commander';
import { BundlemirrorError } from '../errors.js';
import { loadPublishConfig, type PublishConfig, type PublishKey } from '../origin/publish-config.js';

/** Flags that describe one run rather than the publisher: no key. */
const PER_RUN = new Set(['config', 'configCheck', 'remove', 'force', 'json', 'out', 'help', 'version']);

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
    const config = loadPublishConfig(file, publishKeys(cmd));
    for (const [attr, value] of Object.entries(config.values)) {
      if (cmd.getOptionValueSource(attr) === 'cli') continue;
      cmd.setOptionValueWithSource(attr, value, 'config');
    }
    warnings = config.warnings.length;
    printConfigWarnings(config, cmd.getOptionValue('quiet') === true && !check);
    if (cmd.getOptionValueSource('bundles') === 'default' && cmd.getOptionValue('out') === undefined)
      throw bundlesRequired(config);
    if (check) {
      for (const k of publishKeys(cmd)) {
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

/** `[publish]` keys: one per flag of the command, named after it (`--base-url`: `base_url`). */
export function publishKeys(cmd: Command): PublishKey[] {
  return cmd.options.filter((o) => !o.hidden && !PER_RUN.has(o.attributeName())).map(keyOf);
}

function keyOf(o: Option): PublishKey {
  const attr = o.attributeName();
  const takesValue = o.required || o.optional;
  const placeholder = /<([^>]*)>/.exec(o.flags)?.[1] ?? '';
  const def = o.defaultValue as unknown;
  return {
    key: attr.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
    attr,
    flag: o.long ?? o.flags,
    kind: !takesValue ? 'switch' : Array.isArray(def) ? 'list' : 'value',
    // the placeholder says what the value is: --toplevel <dir>, --sign-key <file>, --base-url <url>
    path: /\b(dir|file)\b/.test(placeholder),
    url: /\burl\b/.test(placeholder),
    number: typeof def === 'string' && def.trim() !== '' && Number.isFinite(Number(def)),
  };
}
