/**
 * `bundlemirror serve`: the published tree with byte ranges, read-only
 * smart HTTP for the toplevel's repositories, and a page for people.
 * Runs until SIGINT or SIGTERM, then lets downloads in flight finish for a
 * bounded time and exits 0.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { startServer } from '../server/server.js';

/** How long responses in flight may take to finish after a signal. */
const SHUTDOWN_GRACE_MS = 10_000;

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n > 65535) throw new InvalidArgumentError('must be a port number from 0 to 65535');
  return n;
}

interface ServeFlags {
  bundles: string;
  toplevel?: string;
  host: string;
  port: number;
  lfsWriters?: string;
  pushTo?: string;
}

/** Resolves with the first of the signals; listeners are removed afterwards. */
function nextSignal(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handlers = signals.map((sig) => {
      const h = () => {
        for (const [s, f] of handlers) process.off(s, f);
        resolve(sig);
      };
      process.on(sig, h);
      return [sig, h] as const;
    });
  });
}

export async function runServe(flags: ServeFlags): Promise<void> {
  const server = await startServer({
    bundles: flags.bundles,
    toplevel: flags.toplevel,
    host: flags.host,
    port: flags.port,
    lfsWriters: flags.lfsWriters,
    pushTo: flags.pushTo,
  });
  const git = flags.toplevel === undefined ? 'smart HTTP off (no --toplevel)' : `smart HTTP and Git LFS at ${server.url}/git/ from ${flags.toplevel}`;
  process.stderr.write(`bundlemirror: serving ${flags.bundles} at ${server.url}/ (${git})\n`);
  const writes =
    flags.pushTo !== undefined ? `LFS uploads and locks redirected to ${flags.pushTo}`
    : flags.lfsWriters !== undefined ? `LFS uploads and locks for the writers in ${flags.lfsWriters} (SIGHUP re-reads it)`
    : 'LFS downloads only (no --lfs-writers)';
  if (flags.toplevel !== undefined) process.stderr.write(`bundlemirror: ${writes}\n`);
  const onHup = () => {
    server.reloadWriters().then(
      (n) => process.stderr.write(`bundlemirror: SIGHUP: ${n} LFS writer(s) from ${flags.lfsWriters ?? '(none)'}\n`),
      (err: Error) => process.stderr.write(`bundlemirror: SIGHUP: kept the previous LFS writers: ${err.message}\n`),
    );
  };
  process.on('SIGHUP', onHup);
  const sig = await nextSignal(['SIGINT', 'SIGTERM']);
  process.off('SIGHUP', onHup);
  process.stderr.write(`bundlemirror: ${sig}: finishing responses in flight (up to ${SHUTDOWN_GRACE_MS / 1000} s), then exiting\n`);
  // a second signal means "now": the default handler is back, so it ends the process
  await server.close({ graceMs: SHUTDOWN_GRACE_MS });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the published tree (with byte ranges), read-only smart HTTP git and a status page')
    .option('--bundles <dir>', 'published tree to serve (output of publish)', 'bundles')
    .option('--toplevel <dir>', 'bare repositories to serve read-only over smart HTTP at /git/')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', parsePort, 8080)
    .option('--lfs-writers <file>', 'who may upload Git LFS objects and take locks: one "name token" per line (re-read on SIGHUP)')
    .option('--push-to <url>', 'the master: pushes, LFS uploads and locks get a 307 to the same path under this URL')
    .action(async (flags: ServeFlags) => {
      await runServe(flags);
    });
}
