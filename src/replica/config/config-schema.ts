/**
 * The shape of a parsed replica config (`PullConfig`): every setting a pull,
 * the daemon, fsck and a published copy read, with its type. The file format
 * and its defaults are in config.ts. Commands check a config against this
 * shape by hand (config-check.ts) and load this module only for its types:
 * building these schemas, and zod itself, cost a cron'd poll more than
 * reading its file. The property test (test/config-check.test.ts) holds the
 * check to this schema.
 */
import { isAbsolute } from 'node:path';
import * as z from 'zod';
import type { ConfigWarning } from '../../config/reader.js';

const absPath = z.string().refine((p) => isAbsolute(p), 'must be an absolute path');

const url = z.string().refine((u) => URL.canParse(u), 'must be a URL');

/** `[fsck]`, as fsck-config.ts reads it. */
const FsckConfigSchema = z.object({
  /** Days between two checks of one repository under `fsck --due`. */
  frequencyDays: z.number().int().positive(),
  /** git fsck lines containing one of these are not problems. */
  ignoreErrors: z.array(z.string()),
  /** Only problems containing one of these lead to a re-clone; null (unset): every problem does. */
  recloneOnErrors: z.array(z.string()).nullable(),
  /** Repack the repositories checked (also `fsck --repack`). */
  repack: z.boolean(),
  extraRepackFlags: z.array(z.string()),
  /** Added on a full repack (which also recomputes every delta). */
  extraRepackFlagsFull: z.array(z.string()),
  /** Every Nth repack of a repository is a full one; 0: never. */
  fullRepackEvery: z.number().int().nonnegative(),
  /** Write a commit-graph after a repack (not in repositories that borrow objects). */
  commitgraph: z.boolean(),
  /** `git fsck --connectivity-only` for every repository (also `fsck --connectivity-only`). */
  connectivityOnly: z.boolean(),
  /** Commands run with the JSON report on stdin when a run found anything. */
  reportHook: z.array(z.string()),
});
export type FsckConfig = z.infer<typeof FsckConfigSchema>;

const ConfigWarningSchema: z.ZodType<ConfigWarning> = z.object({
  section: z.string(),
  key: z.string().nullable(),
  kind: z.enum(['unknown', 'unused', 'replaced', 'value']),
  message: z.string(),
});

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
    /** Base for `git fetch` when bundles do not close the gap; defaults to [remote] site; '' for none (a `file:` site). */
    gitUrl: z.string(),
    /** 0 means no limit. */
    hookTimeoutMs: z.number().int().nonnegative(),
    /** `pull --daemon`: where it accepts push notifications and serves /metrics; null: nowhere. */
    listen: z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) }).nullable(),
    /** Shared secret for push notifications over HTTP; null: HTTP notifications refused. */
    notifyTokenFile: absPath.nullable(),
    /** Other places (URL prefixes) the origin's redirects may lead to, besides its own host (manifest) and the published tree (the rest). */
    redirects: z.array(url),
  }),
  /** `[fsck]`: how `bundlemirror fsck` checks, repacks and reports (fsck-config.ts). */
  fsck: FsckConfigSchema,
  /** `[schedule "NAME"]` sections (see daemon-config.ts), in file order. */
  schedules: z.array(z.object({ name: z.string().min(1), cron: z.string(), include: z.array(z.string()) })),
  warnings: z.array(ConfigWarningSchema),
});

export type PullConfig = z.infer<typeof PullConfigSchema>;
