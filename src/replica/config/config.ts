/**
 * The replica's configuration: grokmirror 2's `grokmirror.conf`, read with
 * the same sections, keys, defaults and interpolation as grok-pull, so an
 * existing file runs unchanged. Settings only bundlemirror has live in a
 * `[bundlemirror]` section, which grokmirror ignores.
 *
 * `[fsck]` is read by fsck-config.ts. Keys grokmirror knows but
 * bundlemirror does not use ([manifest], ...) are accepted and reported
 * as notes; keys nobody
 * knows are reported as warnings (typos would otherwise be silently
 * ignored); invalid values throw E_CONFIG naming section, key and what is
 * expected.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { cpus } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { BundlemirrorError } from '../../errors.js';
import { IniDocument } from '../../config/ini.js';
import { MANIFEST_FILE } from '../../manifest/tree.js';
import { expandUser, Reader } from '../../config/reader.js';
import { parseListenAddress } from '../daemon/daemon-config.js';
import { cronFieldsProblem, looksLikeSchedule, scheduleSectionName } from '../../config/schedule-section.js';
import type { PullConfig } from './config-schema.js';
import { checkPullConfig, ConfigShapeError } from './config-check.js';
import { readFsckConfig } from './fsck-config.js';
import { mirrorRoots, retryFor, socketGroup, socketMode, withSlash } from './config-values.js';
import { gitFetchUrl } from './git-url.js';

export type { PullConfig } from './config-schema.js';

/** Seconds a hook may run before it is killed, unless `[bundlemirror] hook_timeout` says otherwise. */
export const DEFAULT_HOOK_TIMEOUT_SECONDS = 3600;

export interface ParseOptions {
  /** Name for messages (the file path). */
  source?: string;
  /** Relative paths other than toplevel resolve against this, as grok-pull's do against its cwd. */
  cwd?: string;
  /** CPU count for the `pull_threads = 0` default (tests pin it). */
  cpus?: number;
  mtimeMs?: number;
  /** Resolve symlinks in toplevel when it exists (default true). */
  realpath?: boolean;
}

/** Reads and validates a grokmirror.conf-style file. Throws E_CONFIG. */
export function loadPullConfig(file: string, opts: Omit<ParseOptions, 'source' | 'mtimeMs'> = {}): PullConfig {
  const abs = resolve(file);
  let text: string;
  let mtimeMs: number;
  try {
    text = readFileSync(abs, 'utf8');
    mtimeMs = statSync(abs).mtimeMs;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BundlemirrorError(
      'E_CONFIG',
      `cannot read config file ${abs}: ${code === 'ENOENT' ? 'it does not exist' : (err as Error).message}`,
      {
        hint: 'pass the path of your grokmirror.conf with -c',
        cause: err,
      },
    );
  }
  const config = parsePullConfig(text, { ...opts, source: abs, mtimeMs });
  return { ...config, file: abs };
}

const CRON_HINT = 'fields are minute hour day-of-month month day-of-week, for example 30 1 * * 1-5';

/**
 * loadPullConfig, and the cron expressions of `[schedule "NAME"]` sections
 * checked by node-schedule itself, which is loaded only for a config that
 * has such sections: a plain pull never loads the daemon's scheduler. What
 * every command that reads a replica config calls.
 */
export async function readPullConfig(
  file: string,
  opts: Omit<ParseOptions, 'source' | 'mtimeMs'> = {},
): Promise<PullConfig> {
  const config = loadPullConfig(file, opts);
  if (config.schedules.length === 0) return config;
  const { cronProblem } = await import('../daemon/schedule.js');
  for (const s of config.schedules) {
    const problem = cronProblem(s.cron);
    if (problem === null) continue;
    // worded and located as the other refusals of this file are
    const doc = IniDocument.parse(readFileSync(config.file, 'utf8'), config.file);
    const section = doc.sections().find((name) => scheduleSectionName(name) === s.name) ?? `schedule "${s.name}"`;
    new Reader(doc, config.file, opts.cwd ?? process.cwd()).fail(
      section,
      'cron',
      `${JSON.stringify(s.cron)} ${problem}`,
      CRON_HINT,
    );
  }
  return config;
}

/** Parses config text (no file access except an optional realpath of toplevel). */
export function parsePullConfig(text: string, opts: ParseOptions = {}): PullConfig {
  const source = opts.source ?? 'config';
  const doc = IniDocument.parse(text, source);
  const r: Reader = new Reader(doc, source, opts.cwd ?? process.cwd());

  // [core] toplevel first: every ${toplevel} elsewhere must see the normalised value, as in grok-pull.
  if (!doc.hasSection('core')) {
    r.fail(
      'core',
      null,
      'the [core] section is missing',
      'a grokmirror 2 config starts with [core] and toplevel = /path/to/mirror (grokmirror 1.x repos.conf files are not supported)',
    );
  }
  const rawTop = r.str('core', 'toplevel', '');
  if (rawTop === '') r.fail('core', 'toplevel', 'is required: the directory that holds the mirrored repositories');
  const expanded = expandUser(rawTop);
  if (!isAbsolute(expanded)) r.fail('core', 'toplevel', `must be an absolute path, got ${JSON.stringify(rawTop)}`);
  let toplevel = resolve(expanded);
  if (opts.realpath !== false) {
    try {
      toplevel = realpathSync(toplevel);
    } catch {
      /* does not exist yet; checkToplevel() reports that when it matters */
    }
  }
  doc.setRaw('core', 'toplevel', toplevel.replace(/\$/g, '$$$$'));

  const manifestPath = r.path('core', 'manifest') ?? resolve(toplevel, MANIFEST_FILE);
  const log = r.path('core', 'log');
  const loglevelRaw = r.str('core', 'loglevel', 'info').toLowerCase();
  let loglevel: 'info' | 'debug' = 'info';
  if (loglevelRaw === 'debug') loglevel = 'debug';
  else if (loglevelRaw !== 'info')
    r.warn(
      'core',
      'loglevel',
      'value',
      `loglevel ${JSON.stringify(loglevelRaw)} is not "info" or "debug"; using info (as grok-pull does)`,
    );
  const objstore = r.path('core', 'objstore') ?? resolve(toplevel, 'objstore');

  if (!doc.hasSection('remote'))
    r.fail(
      'remote',
      null,
      'the [remote] section is missing',
      'add [remote] with site = https://origin.example and manifest = ${site}/manifest.js.gz',
    );
  const site = r.str('remote', 'site', '').replace(/\/+$/, '');
  if (site === '')
    r.fail('remote', 'site', 'is required: the base URL of the origin (for example https://git.kernel.org)');
  const manifestRaw = r.str('remote', 'manifest', '');
  if (manifestRaw === '') {
    const why = doc.has('remote', 'manifest_command')
      ? '; bundlemirror does not run manifest_command, it needs the manifest URL'
      : '';
    r.fail(
      'remote',
      'manifest',
      `is required: the URL of the origin's manifest.js.gz${why}`,
      'for example manifest = ${site}/manifest.js.gz',
    );
  }
  const remoteManifest = r.url('remote', 'manifest', manifestRaw, site);
  const allowedSigners = r.path('remote', 'allowed_signers');
  // a signing origin renews its stamp at every full publish (daily from cron): a week without one is a frozen tree
  const manifestMaxAge = r.duration('remote', 'manifest_max_age', allowedSigners ? 7 * 86_400 : 0);
  const publishOut = r.path('publish', 'out');
  const graceDays = r.int('publish', 'grace_days', 7, { min: 0, what: 'a number of days' });
  const onDemandRaw = r.str('remote', 'on_demand', '');
  const onDemand = onDemandRaw === '' ? null : r.url('remote', 'on_demand', onDemandRaw, site).replace(/\/+$/, '');

  const pullThreadsRaw = r.int('pull', 'pull_threads', 0, { min: 0 });
  const cpuCount = opts.cpus ?? cpus().length;
  const pull = {
    include: r.list('pull', 'include', ['*']),
    exclude: r.list('pull', 'exclude', []),
    nopurge: r.list('pull', 'nopurge', []),
    ffonly: r.list('pull', 'ffonly', []),
    pullThreads: pullThreadsRaw > 0 ? pullThreadsRaw : Math.max(1, Math.floor(cpuCount / 2)),
    retries: r.int('pull', 'retries', 3, { min: 0 }),
    purge: r.bool('pull', 'purge', false),
    purgeprotect: r.int('pull', 'purgeprotect', 5, { min: 0, max: 100, what: 'a percentage from 0 to 100' }),
    postUpdateHook: r.commands('pull', 'post_update_hook'),
    postCloneCompleteHook: r.commands('pull', 'post_clone_complete_hook'),
    postWorkCompleteHook: r.commands('pull', 'post_work_complete_hook'),
    projectslist: r.path('pull', 'projectslist'),
    projectslistTrimtop: r.str('pull', 'projectslist_trimtop', ''),
    projectslistSymlinks: r.bool('pull', 'projectslist_symlinks', false),
    defaultOwner: r.str('pull', 'default_owner', 'Grokmirror'),
    refresh: doc.has('pull', 'refresh')
      ? r.int('pull', 'refresh', 300, { min: 1, what: 'a number of seconds, at least 1' })
      : null,
    socket: r.path('pull', 'socket'),
    socketMode: socketMode(r),
    socketGroup: socketGroup(r),
    lfs: r.bool('pull', 'lfs', true),
    retryForMs: retryFor(r),
  };
  if (doc.has('pull', 'include') && pull.include.length === 0) {
    r.warn(
      'pull',
      'include',
      'value',
      'include is empty, so no repository will be mirrored (write include = * to mirror everything)',
    );
  }

  const bundlesRaw = r.str('bundlemirror', 'bundles', '');
  const bundles =
    bundlesRaw === ''
      ? new URL('.', remoteManifest).href
      : withSlash(r.url('bundlemirror', 'bundles', bundlesRaw, site));
  const gitUrl = gitFetchUrl(r, site);
  const hookTimeout = r.int('bundlemirror', 'hook_timeout', DEFAULT_HOOK_TIMEOUT_SECONDS, {
    min: 0,
    what: 'a number of seconds (0: no limit)',
  });
  const listenRaw = r.str('bundlemirror', 'listen', '');
  const listen = listenRaw === '' ? null : parseListenAddress(listenRaw);
  if (typeof listen === 'string') r.fail('bundlemirror', 'listen', listen);
  const notifyTokenFile = r.path('bundlemirror', 'notify_token_file');
  const redirects = r
    .list('bundlemirror', 'redirects', [])
    .flatMap((l) => l.split(/\s+/))
    .filter(Boolean)
    .map((v) => withSlash(r.url('bundlemirror', 'redirects', v, site)));
  const schedules = doc.sections().flatMap((section) => {
    if (looksLikeSchedule(section))
      r.fail(section, null, 'is not a schedule section name', 'write [schedule "NAME"] with the name in double quotes');
    const name = scheduleSectionName(section);
    if (name === null) return [];
    const cron = r.str(section, 'cron', '').trim();
    if (cron === '') r.fail(section, 'cron', 'is required: when to pull this group, for example cron = 0 2 * * *');
    // node-schedule's own verdict comes after, in readPullConfig (it is loaded only for configs with schedules)
    const problem = cronFieldsProblem(cron);
    if (problem) r.fail(section, 'cron', `${JSON.stringify(cron)} ${problem}`, CRON_HINT);
    const include = r.list(section, 'include', []);
    if (include.length === 0)
      r.fail(section, 'include', 'is required: the repositories (globs, one per line) pulled on this schedule');
    return [{ name, cron, include }];
  });

  const fsck = readFsckConfig(r);
  // every key is read before the unknown ones are reported, or a key read later is called unknown
  const mirrors = mirrorRoots(r, site);
  r.reportUnknownKeys();

  const config = {
    file: '',
    mtimeMs: opts.mtimeMs ?? 0,
    core: { toplevel, manifest: manifestPath, log, loglevel, objstore },
    remote: {
      site,
      manifest: remoteManifest,
      allowedSigners,
      manifestMaxAgeMs: manifestMaxAge * 1000,
      onDemand,
      mirrors,
    },
    publish: { out: publishOut, graceMs: graceDays * 86_400_000 },
    pull,
    bundlemirror: { bundles, gitUrl, hookTimeoutMs: hookTimeout * 1000, listen, notifyTokenFile, redirects },
    fsck,
    schedules,
    warnings: r.warnings,
  };
  try {
    return checkPullConfig(config);
  } catch (err) {
    if (!(err instanceof ConfigShapeError)) throw err;
    throw new BundlemirrorError('E_CONFIG', `${source}: ${err.message}`, {
      cause: err,
      hint: 'fix that value in the config file: before the colon is its section, then its key as bundlemirror holds it (socket_group as socketGroup, retry_for as retryForMs)',
    });
  }
}

/** The toplevel must be an existing, writable directory before a pull starts (grok-pull exits otherwise). */
export async function checkToplevel(config: Pick<PullConfig, 'core'>): Promise<void> {
  const dir = config.core.toplevel;
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw new Error('not a directory');
    await access(dir, fsConstants.W_OK);
  } catch (err) {
    throw new BundlemirrorError(
      'E_TOPLEVEL',
      `toplevel ${dir} does not exist or is not a writable directory (${(err as Error).message})`,
      {
        hint: `create it (mkdir -p ${dir}) and make it writable by this user, or fix [core] toplevel`,
        cause: err,
      },
    );
  }
}
