/**
 * The replica's configuration: grokmirror 2's `grokmirror.conf`, read with
 * the same sections, keys, defaults and interpolation as grok-pull, so an
 * existing file runs unchanged. Settings only bundlemirror has live in a
 * `[bundlemirror]` section, which grokmirror ignores.
 *
 * Keys grokmirror knows but bundlemirror does not use (object storage,
 * [fsck], [manifest], ...) are accepted and reported as notes; keys nobody
 * knows are reported as warnings (typos would otherwise be silently
 * ignored); invalid values throw E_CONFIG naming section, key and what is
 * expected.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { cpus } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { BundlemirrorError } from '../../errors.js';
import { IniDocument } from './configparser.js';
import { MANIFEST_FILE } from '../../manifest/tree.js';
import { parseDuration } from '../../format/duration.js';
import { DEFAULT_RETRY_FOR_MS } from '../../transfer/retry-policy.js';
import { ConfigWarningSchema, expandUser, Reader } from './config-reader.js';
import { cronProblem } from '../daemon/schedule.js';
import { looksLikeSchedule, parseListenAddress, scheduleSectionName } from '../daemon/daemon-config.js';

/** Seconds a hook may run before it is killed, unless `[bundlemirror] hook_timeout` says otherwise. */
export const DEFAULT_HOOK_TIMEOUT_SECONDS = 3600;

const absPath = z.string().refine((p) => isAbsolute(p), 'must be an absolute path');
const url = z.string().refine((u) => URL.canParse(u), 'must be a URL');

export const PullConfigSchema = z.object({
  /** Absolute path of the config file (empty when parsed from text). */
  file: z.string(),
  /** The file's mtime; grok-pull refetches the manifest when the config changed. */
  mtimeMs: z.number(),
  core: z.object({
    /** Absolute, normalised (realpath when it exists). */
    toplevel: absPath,
    /** Where the replica writes its own manifest (default `${toplevel}/manifest.js.gz`). */
    manifest: absPath,
    log: absPath.nullable(),
    loglevel: z.enum(['info', 'debug']),
    /** grokmirror's object storage directory; accepted, not used by bundlemirror. */
    objstore: absPath,
  }),
  remote: z.object({
    /** Base of the origin's git URLs, no trailing slash. */
    site: z.string().min(1),
    /** Absolute URL of the remote manifest (http, https or file). */
    manifest: url,
    /** git's allowed_signers file: manifest and index.json must carry a valid signature by a key it lists; null: no check. */
    allowedSigners: absPath.nullable(),
    /** `status` warns when the accepted signed manifest was published longer ago than this; 0: never. */
    manifestMaxAgeMs: z.number().int().nonnegative(),
    /** An on-demand bundle service (`serve --on-demand`) for new repositories the origin publishes no bundles for; null: none. */
    onDemand: url.nullable(),
    /** `[remote] mirrors`: other hosts of the same published tree (each its root, ending in `/`), for failover and speed. */
    mirrors: z.array(url),
  }),
  publish: z.object({
    /** Where to keep a copy of the origin's published files for what this replica mirrors (a tier); null: none. */
    out: absPath.nullable(),
    /** How long files the copy no longer references stay before gc deletes them. */
    graceMs: z.number().int().nonnegative(),
  }),
  pull: z.object({
    include: z.array(z.string()),
    exclude: z.array(z.string()),
    /** Repositories never purged, even when gone from the manifest. */
    nopurge: z.array(z.string()),
    /** grokmirror refuses forced updates and purges for these. */
    ffonly: z.array(z.string()),
    /** Effective worker count: 0 in the file means half the CPUs, at least 1. */
    pullThreads: z.number().int().positive(),
    /** As written: attempts per repository are max(1, retries). */
    retries: z.number().int().nonnegative(),
    purge: z.boolean(),
    /** Refuse a purge of this percentage of local repositories or more (0-100). */
    purgeprotect: z.number().int().min(0).max(100),
    /** One command line per entry, split with shlex when run. */
    postUpdateHook: z.array(z.string()),
    postCloneCompleteHook: z.array(z.string()),
    postWorkCompleteHook: z.array(z.string()),
    projectslist: absPath.nullable(),
    projectslistTrimtop: z.string(),
    projectslistSymlinks: z.boolean(),
    defaultOwner: z.string(),
    /** Seconds between manifest polls in daemon mode; null: not set, so grok-pull runs once. */
    refresh: z.number().int().positive().nullable(),
    socket: absPath.nullable(),
    /** Permission bits of the socket: who may notify through it (no token). */
    socketMode: z.number().int().min(0).max(0o777),
    /** Group the socket is given (a gid), so that e.g. the origin's `git` user may write it; null: this process's. */
    socketGroup: z.number().int().min(0).nullable(),
    /** Download the Git LFS objects the origin publishes (`lfs = no` mirrors git history only). */
    lfs: z.boolean(),
    /** `retry_for`: how long a download keeps retrying a failing server after its last byte (an outage, a restart). */
    retryForMs: z.number().int().positive(),
  }),
  bundlemirror: z.object({
    /** Base URL of the published tree (index.json and bundles), ending in `/`. */
    bundles: url.refine((u) => u.endsWith('/'), 'must end with "/"'),
    /** Base for `git fetch` when bundles do not close the gap; defaults to [remote] site. */
    gitUrl: z.string().min(1),
    /** 0 means no limit. */
    hookTimeoutMs: z.number().int().nonnegative(),
    /** `pull --daemon`: where it accepts push notifications and serves /metrics; null: nowhere. */
    listen: z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) }).nullable(),
    /** Shared secret for push notifications over HTTP; null: HTTP notifications refused. */
    notifyTokenFile: absPath.nullable(),
    /** Other places (URL prefixes) the origin's redirects may lead to, besides its own host (manifest) and the published tree (the rest). */
    redirects: z.array(url),
  }),
  /** `[schedule "NAME"]` sections (see daemon-config.ts), in file order. */
  schedules: z.array(z.object({ name: z.string().min(1), cron: z.string(), include: z.array(z.string()) })),
  warnings: z.array(ConfigWarningSchema),
});
export type PullConfig = z.infer<typeof PullConfigSchema>;

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

function mirrorRoots(r: Reader, site: string): string[] {
  const words = r
    .list('remote', 'mirrors', [])
    .flatMap((line) => line.split(/\s+/))
    .filter((w) => w !== '');
  return words.map((w) => {
    const u = r.url('remote', 'mirrors', w, site);
    if (!/^https?:/.test(u))
      r.fail('remote', 'mirrors', `must list http:// or https:// URLs of the tree's root, got ${JSON.stringify(w)}`);
    return u.endsWith('/') ? u : `${u}/`;
  });
}

function retryFor(r: Reader): number {
  const raw = r.str('pull', 'retry_for', '');
  if (raw === '') return DEFAULT_RETRY_FOR_MS;
  const ms = parseDuration(raw);
  if (ms === null || ms <= 0)
    r.fail('pull', 'retry_for', `must be a duration such as 30s, 10m or 1h, got ${JSON.stringify(raw)}`);
  return ms;
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
  const gitUrl = (r.str('bundlemirror', 'git_url', '') || site).replace(/\/+$/, '');
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
    const problem = cronProblem(cron);
    if (problem)
      r.fail(
        section,
        'cron',
        `${JSON.stringify(cron)} ${problem}`,
        'fields are minute hour day-of-month month day-of-week, for example 30 1 * * 1-5',
      );
    const include = r.list(section, 'include', []);
    if (include.length === 0)
      r.fail(section, 'include', 'is required: the repositories (globs, one per line) pulled on this schedule');
    return [{ name, cron, include }];
  });

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
      mirrors: mirrorRoots(r, site),
    },
    publish: { out: publishOut, graceMs: graceDays * 86_400_000 },
    pull,
    bundlemirror: { bundles, gitUrl, hookTimeoutMs: hookTimeout * 1000, listen, notifyTokenFile, redirects },
    schedules,
    warnings: r.warnings,
  };
  const checked = PullConfigSchema.safeParse(config);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new BundlemirrorError('E_CONFIG', `${source}: ${issue.path.join('.')}: ${issue.message}`);
  }
  return checked.data;
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

function withSlash(u: string): string {
  return u.endsWith('/') ? u : `${u}/`;
}

/** `[pull] socket_mode`: octal permission bits, group-writable by default. */
function socketMode(r: Reader): number {
  const v = r.str('pull', 'socket_mode', '0660').trim();
  if (!/^0?[0-7]{3}$/.test(v))
    r.fail('pull', 'socket_mode', `must be octal permission bits such as 0660, got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}

/** `[pull] socket_group`: a group name from /etc/group or a numeric gid. */
function socketGroup(r: Reader): number | null {
  const v = r.str('pull', 'socket_group', '').trim();
  if (v === '') return null;
  if (/^\d+$/.test(v)) return Number(v);
  const gid = gidOf(v);
  if (gid === null)
    r.fail(
      'pull',
      'socket_group',
      `no group ${JSON.stringify(v)} in /etc/group`,
      'name an existing group, or give its numeric gid',
    );
  return gid;
}

function gidOf(name: string): number | null {
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return null;
}
