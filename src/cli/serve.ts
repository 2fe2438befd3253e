/**
 * `bundlemirror serve`: the published tree with byte ranges, read-only
 * smart HTTP for the toplevel's repositories, and a page for people.
 * Runs until SIGINT or SIGTERM, then lets downloads in flight finish for a
 * bounded time and exits 0.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { startServer } from '../server/server.js';
import { defaultBackends } from '../server/backend-limits.js';
import { BundlemirrorError } from '../errors.js';
import { OnDemandService } from '../on-demand/service.js';
import { firstSignal } from './interrupt.js';

/** How long responses in flight may take to finish after a signal. */
const SHUTDOWN_GRACE_MS = 10_000;

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n > 65535) throw new InvalidArgumentError('must be a port number from 0 to 65535');
  return n;
}

/** `3600`, `90s`, `30m`, `1h`, `2d` -> milliseconds. */
function parseDuration(value: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('must be a duration such as 3600, 90s, 30m, 1h or 2d');
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'] * 1000;
}

/** `1048576`, `500M`, `2G`, `1T` (powers of 1024) -> bytes. */
function parseSize(value: string): number {
  const m = /^(\d+)([KMGT])?i?B?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError('must be a size such as 500M, 2G or a number of bytes');
  return Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] ?? ' ').toUpperCase());
}

function parseCount(value: string): number {
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a number from 1 to 9999');
  return Number(value);
}

interface ServeFlags {
  bundles?: string;
  toplevel?: string;
  host: string;
  port: number;
  lfsWriters?: string;
  pushTo?: string;
  gitBackends?: number;
  onDemand?: string;
  allow?: string[];
  onDemandTtl: number;
  onDemandJobs: number;
  onDemandMaxRepoSize: number;
  onDemandMaxCacheSize: number;
}

export async function runServe(flags: ServeFlags): Promise<void> {
  if (flags.allow?.length && flags.onDemand === undefined)
    throw new BundlemirrorError('E_USAGE', '--allow applies to --on-demand DIR, which is missing');
  const onDemand =
    flags.onDemand === undefined
      ? undefined
      : await OnDemandService.open({
          dir: flags.onDemand,
          allow: flags.allow ?? [],
          ttlMs: flags.onDemandTtl,
          maxJobs: flags.onDemandJobs,
          maxRepoBytes: flags.onDemandMaxRepoSize,
          maxCacheBytes: flags.onDemandMaxCacheSize,
          log: (l) => process.stderr.write(`${l}\n`),
        });
  // --on-demand alone serves only the service and --toplevel alone a replica's repositories; else ./bundles as always
  const bundles = flags.bundles ?? (onDemand || flags.toplevel !== undefined ? null : 'bundles');
  const server = await startServer({
    bundles,
    toplevel: flags.toplevel,
    host: flags.host,
    port: flags.port,
    lfsWriters: flags.lfsWriters,
    pushTo: flags.pushTo,
    gitLimits: { max: flags.gitBackends },
    onDemand,
  });
  const git =
    flags.toplevel === undefined
      ? 'smart HTTP off (no --toplevel)'
      : `smart HTTP and Git LFS at ${server.url}/git/ from ${flags.toplevel}`;
  const what = bundles === null ? `the repositories of ${flags.toplevel}/manifest.js.gz` : bundles;
  if (bundles !== null || flags.toplevel !== undefined)
    process.stderr.write(`bundlemirror: serving ${what} at ${server.url}/ (${git})\n`);
  if (onDemand)
    process.stderr.write(
      `bundlemirror: bundles on demand at ${server.url}/on-demand (cache ${flags.onDemand}, allowed: ${(flags.allow ?? []).join(' ')})\n`,
    );
  const writes =
    flags.pushTo !== undefined
      ? `LFS uploads and locks redirected to ${flags.pushTo}`
      : flags.lfsWriters !== undefined
        ? `LFS uploads and locks for the writers in ${flags.lfsWriters} (SIGHUP re-reads it)`
        : 'LFS downloads only (no --lfs-writers)';
  if (flags.toplevel !== undefined) process.stderr.write(`bundlemirror: ${writes}\n`);
  const onHup = () => {
    server.reloadWriters().then(
      (n) => process.stderr.write(`bundlemirror: SIGHUP: ${n} LFS writer(s) from ${flags.lfsWriters ?? '(none)'}\n`),
      (err: Error) => process.stderr.write(`bundlemirror: SIGHUP: kept the previous LFS writers: ${err.message}\n`),
    );
  };
  process.on('SIGHUP', onHup);
  const sig = await firstSignal(['SIGINT', 'SIGTERM']);
  process.off('SIGHUP', onHup);
  process.stderr.write(
    `bundlemirror: ${sig}: finishing responses in flight (up to ${SHUTDOWN_GRACE_MS / 1000} s), then exiting\n`,
  );
  // a second signal means "now": the default handler is back, so it ends the process
  await server.close({ graceMs: SHUTDOWN_GRACE_MS });
  await onDemand?.close({ abort: true });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the published tree (with byte ranges), read-only smart HTTP git and a status page')
    .option(
      '--bundles <dir>',
      'published tree to serve (output of publish; default bundles, none with --on-demand or --toplevel alone)',
    )
    .option(
      '--toplevel <dir>',
      'bare repositories to serve read-only over smart HTTP at /git/ (those the manifest lists)',
    )
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', parsePort, 8080)
    .option(
      '--lfs-writers <file>',
      'who may upload Git LFS objects and take locks: one "name token" per line (re-read on SIGHUP)',
    )
    .option(
      '--push-to <url>',
      'the master: git pushes, LFS uploads and locks get a 307 to the same path under this URL',
    )
    .option(
      '--git-backends <n>',
      `git http-backend processes at once for /git/ (default ${defaultBackends()}: twice the CPUs); more wait briefly, then get 503`,
      parseCount,
    )
    .option(
      '--on-demand <dir>',
      'run the on-demand bundle service with this cache directory (API at /api/on-demand, page at /on-demand)',
    )
    .option(
      '--allow <pattern...>',
      'upstream URLs the on-demand service may clone, e.g. "https://github.com/*" (repeatable)',
    )
    // defaults are shown as they are written on the command line, not as the milliseconds and bytes they parse to
    .addOption(
      new Option(
        '--on-demand-ttl <duration>',
        'refresh a mirror older than this when it is requested again (90s, 30m, 1h, 2d)',
      )
        .argParser(parseDuration)
        .default(3600_000, '1h'),
    )
    .option('--on-demand-jobs <n>', 'clones and fetches running at once', parseCount, 2)
    .addOption(
      new Option('--on-demand-max-repo-size <size>', 'stop a clone that grows past this size (500M, 2G, or bytes)')
        .argParser(parseSize)
        .default(2 * 1024 ** 3, '2G'),
    )
    .addOption(
      new Option('--on-demand-max-cache-size <size>', 'evict least recently requested mirrors past this total')
        .argParser(parseSize)
        .default(20 * 1024 ** 3, '20G'),
    )
    .action(async (flags: ServeFlags) => {
      await runServe(flags);
    });
}
