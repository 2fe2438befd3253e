/**
 * `publish -c FILE`: the publisher's settings in one file, so the
 * post-receive hook, the daily cron line and a systemd unit name the file
 * instead of repeating every flag (and cannot drift apart, as a hook
 * without the cron line's `--base-url` would).
 *
 * The file is read with the replica's INI reader (grokmirror.conf rules:
 * `${section:key}` interpolation, multi-line values). `[publish]` has one
 * key per `publish` flag, named as the flag with `_` for `-` (`--base-url`
 * is `base_url`); the keys are given by the caller, made from the same
 * description of the options that the command is built from
 * (src/cli/publish-options.ts), so a flag added to the command has its key.
 * A grokmirror.conf that grok-manifest already reads
 * also works where the meaning is the same: `[core] toplevel` and
 * `[manifest] ignore`. Values pass through as the flag's value would: a key
 * naming a directory may as well hold a URL (`bundles = s3://...`).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { IniDocument } from '../config/ini.js';
import { expandUser, Reader, type ConfigWarning } from '../config/reader.js';

export const PUBLISH_SECTION = 'publish';

/** One `[publish]` key and the flag it stands for. */
export interface PublishKey {
  /** The key: the flag's name with `_` for `-` (`base_url` for `--base-url`). */
  key: string;
  /** The property the value goes to (the flag's, as the command line parser names it). */
  attr: string;
  /** The flag, for messages (`--base-url`). */
  flag: string;
  /** `switch`: yes/no; `value`: one value; `list`: repeatable, one value per line. */
  kind: 'switch' | 'value' | 'list';
  /** A file or directory: `~` expanded, a relative path resolved (with a warning); a URL passes as written. */
  path?: boolean;
  /** URLs: a list may also separate them with spaces, and each must be http(s). */
  url?: boolean;
  /** A non-negative number. */
  number?: boolean;
}

export type PublishValue = string | boolean | string[];

export interface PublishConfig {
  /** Absolute path of the file (the name given when parsed from text). */
  file: string;
  /** By the flag's property name: only what the file sets. */
  values: Record<string, PublishValue>;
  /** Where each value was set, by property name (`[publish] base_url (line 4)`), for messages. */
  origins: Record<string, string>;
  warnings: ConfigWarning[];
}

export interface PublishConfigOptions {
  /** Name for messages. */
  source?: string;
  /** Relative paths resolve against this (with a warning), as the replica's do. */
  cwd?: string;
}

/** Sections other programs read from a shared grokmirror.conf: noted once, their keys left alone. */
const OTHER_TOOLS: Record<string, string> = {
  remote: 'bundlemirror pull and grok-pull',
  pull: 'bundlemirror pull and grok-pull',
  bundlemirror: 'bundlemirror pull',
  fsck: 'bundlemirror fsck and grok-fsck',
};

/** Reads a publish config. Throws E_CONFIG naming the file, section, key and line. */
export function loadPublishConfig(
  file: string,
  keys: readonly PublishKey[],
  opts: Omit<PublishConfigOptions, 'source'> = {},
): PublishConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BundlemirrorError(
      'E_CONFIG',
      `cannot read publish config ${abs}: ${code === 'ENOENT' ? 'it does not exist' : (err as Error).message}`,
      { hint: 'pass the path of the publish config with -c (for example /etc/bundlemirror/publish.conf)', cause: err },
    );
  }
  return { ...parsePublishConfig(text, keys, { ...opts, source: abs }), file: abs };
}

export function parsePublishConfig(
  text: string,
  keys: readonly PublishKey[],
  opts: PublishConfigOptions = {},
): PublishConfig {
  const source = opts.source ?? 'config';
  const doc = IniDocument.parse(text, source);
  const r = new Reader(doc, source, opts.cwd ?? process.cwd(), {
    command: 'bundlemirror publish',
    otherTool: (section) =>
      OTHER_TOOLS[section] ?? (/^schedule\b/.test(section) ? 'bundlemirror pull --daemon' : undefined),
    skipOtherSections: true,
  });
  const values: Record<string, PublishValue> = {};
  const origins: Record<string, string> = {};
  const at = (section: string, key: string) => {
    const line = doc.lineOf(section, key);
    return `${source}: [${section}] ${key}${line ? ` (line ${line})` : ''}`;
  };

  if (doc.has(PUBLISH_SECTION, 'out')) {
    r.str(PUBLISH_SECTION, 'out', '');
    r.fail(
      PUBLISH_SECTION,
      'out',
      "is a replica's setting (the copy of the tree it mirrors, for pull -c), not where publish writes",
      'write bundles = DIR for the tree publish writes',
    );
  }

  for (const k of keys) {
    if (!doc.has(PUBLISH_SECTION, k.key)) {
      r.str(PUBLISH_SECTION, k.key, ''); // asked for: a near miss of it is a typo
      continue;
    }
    origins[k.attr] = at(PUBLISH_SECTION, k.key);
    if (k.kind === 'switch') values[k.attr] = r.bool(PUBLISH_SECTION, k.key, false);
    else if (k.kind === 'list') values[k.attr] = listOf(r, k);
    else {
      const v = r.str(PUBLISH_SECTION, k.key, '').trim();
      if (v === '') continue; // written empty: as if not written
      values[k.attr] = checkValue(r, k, v);
    }
  }

  // grok-manifest's keys where they mean what ours do (always asked for: a near miss of one is a typo)
  const toplevelKey = keys.find((k) => k.key === 'toplevel');
  const coreTop = r.str('core', 'toplevel', '').trim();
  if (toplevelKey && coreTop !== '') {
    const core = pathValue(r, 'core', 'toplevel', coreTop);
    const ours = values[toplevelKey.attr];
    if (ours !== undefined && ours !== core)
      r.fail(
        PUBLISH_SECTION,
        'toplevel',
        `says ${String(ours)} but [core] toplevel says ${core}`,
        'keep one of them (publish reads [core] toplevel when [publish] has none)',
      );
    values[toplevelKey.attr] = core;
    origins[toplevelKey.attr] ??= at('core', 'toplevel');
  }
  const ignoreKey = keys.find((k) => k.key === 'ignore' && k.kind === 'list');
  const grokIgnore = r.list('manifest', 'ignore', []);
  if (ignoreKey && grokIgnore.length > 0) {
    // grok-manifest matches its globs against disk paths, ours against manifest paths: drop the toplevel in front
    const top = values[toplevelKey?.attr ?? ''];
    const globs = grokIgnore.map((g) => (typeof top === 'string' && g.startsWith(`${top}/`) ? g.slice(top.length) : g));
    values[ignoreKey.attr] = [...((values[ignoreKey.attr] as string[] | undefined) ?? []), ...globs];
    origins[ignoreKey.attr] ??= at('manifest', 'ignore');
  }
  if (doc.has('core', 'manifest')) {
    r.str('core', 'manifest', '');
    r.warn(
      'core',
      'manifest',
      'unused',
      'publish writes manifest.js.gz at the top of bundles (the published tree); this path is not used',
    );
  }

  r.reportUnknownKeys();
  return { file: source, values, origins, warnings: r.warnings };
}

function listOf(r: Reader, k: PublishKey): string[] {
  const lines = r.list(PUBLISH_SECTION, k.key, []);
  const items = k.url ? lines.flatMap((l) => l.split(/\s+/)).filter((w) => w !== '') : lines;
  return items.map((v) => checkValue(r, k, v));
}

function checkValue(r: Reader, k: PublishKey, v: string): string {
  if (k.number) {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      r.fail(PUBLISH_SECTION, k.key, `must be a non-negative number, got ${JSON.stringify(v)}`);
  }
  if (k.url && !/^https?:\/\/[^/]/i.test(v))
    r.fail(PUBLISH_SECTION, k.key, `must be an http:// or https:// URL, got ${JSON.stringify(v)}`);
  return k.path ? pathValue(r, PUBLISH_SECTION, k.key, v) : v;
}

/** A path as the replica reads one; a URL (`s3://bucket/tree`) is a destination of its own and passes as written. */
function pathValue(r: Reader, section: string, key: string, v: string): string {
  if (v === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return v;
  if (isAbsolute(expandUser(v))) return resolve(expandUser(v));
  return r.path(section, key) ?? v;
}
