/**
 * `startServer`: the programmatic face of `bundlemirror serve`, used by the
 * CLI, the tests and the demo (which listen on port 0).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { buildApp } from './app.js';
import { OpenFileCache } from './open-files.js';
import type { LogLine } from './access-log.js';
import { hostPort } from './base-url.js';
import { LfsWriters } from '../lfs/writers.js';
import type { OnDemandService } from '../on-demand/service.js';
import { MANIFEST_FILE } from '../manifest/tree.js';
import { checkPublishedTree } from './tree-check.js';
import { pushToProblem } from './push.js';
import type { BackendLimitOptions } from './backend-limits.js';

export interface ServeOptions {
  /**
   * The published tree (`publish --out`); its manifest decides which
   * repositories are served. Omitted or null: none; then repositories are
   * served from `<toplevel>/manifest.js.gz` (a replica's own), or only the
   * on-demand service.
   */
  bundles?: string | null | undefined;
  /** Bare repositories for smart HTTP at `/git/`; omitted: no smart HTTP. */
  toplevel?: string | undefined;
  /** Default 127.0.0.1. */
  host?: string | undefined;
  /** Default 8080; 0 picks a free port. */
  port?: number | undefined;
  /** Access log sink, one line per request; default stderr; false for none. */
  log?: LogLine | false | undefined;
  /** `name token` lines: who may upload LFS objects and take locks (re-read by reloadWriters). */
  lfsWriters?: string | undefined;
  /** The master's base URL: pushes, LFS uploads and locks get a 307 to the same path there. */
  pushTo?: string | undefined;
  /** Bounds on `git http-backend` processes and request bodies; `max` is `--git-backends`. */
  gitLimits?: BackendLimitOptions | undefined;
  /** Serve this on-demand service (API, page, its published tree under /on-demand/). */
  onDemand?: OnDemandService | undefined;
}

export interface RunningServer {
  /** `http://host:port`, no trailing slash. */
  url: string;
  host: string;
  port: number;
  /**
   * Stops accepting connections, lets responses in flight finish for up to
   * `graceMs` (default 10 s), then closes whatever is left.
   */
  close(opts?: { graceMs?: number }): Promise<void>;
  /** Re-reads `--lfs-writers` (SIGHUP); on error the previous list stays and the error is thrown. Returns the count. */
  reloadWriters(): Promise<number>;
}

const IDLE_SOCKET_MS = 5 * 60_000;

const stderrLog: LogLine = (line) => process.stderr.write(`${line}\n`);

async function realDirectory(dir: string, fail: (why: string) => BundlemirrorError): Promise<string> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    throw fail('does not exist');
  }
  if (!(await stat(real)).isDirectory()) throw fail('is not a directory');
  return real;
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const bundles = opts.bundles === null || opts.bundles === undefined ? null : resolve(opts.bundles);
  if (bundles === null && opts.toplevel === undefined && !opts.onDemand) {
    throw new BundlemirrorError('E_USAGE', 'nothing to serve: give --bundles, --toplevel or both', {
      hint: 'an origin serves --bundles (and --toplevel for smart HTTP); a replica may serve its --toplevel alone',
    });
  }
  let realBundles: string | null = null;
  if (bundles !== null) {
    realBundles = await realDirectory(
      bundles,
      (why) =>
        new BundlemirrorError('E_CONFIG', `bundles directory ${bundles} ${why}`, {
          hint: 'run `bundlemirror publish --toplevel DIR --out DIR` first, or point --bundles at a published tree',
        }),
    );
    await checkPublishedTree(realBundles);
  }
  const onDemand = opts.onDemand
    ? { service: opts.onDemand, realPublished: await realpath(opts.onDemand.publishedDir) }
    : null;
  let realToplevel: string | null = null;
  if (opts.toplevel !== undefined) {
    const toplevel = resolve(opts.toplevel);
    realToplevel = await realDirectory(
      toplevel,
      (why) =>
        new BundlemirrorError('E_TOPLEVEL', `toplevel ${toplevel} ${why}`, {
          hint: 'pass the directory holding the bare repositories, or leave out --toplevel to serve bundles only',
        }),
    );
  }
  const manifestRoot = realBundles ?? realToplevel;
  const manifestFile = manifestRoot === null ? null : join(manifestRoot, MANIFEST_FILE);
  if (
    realBundles === null &&
    manifestFile !== null &&
    !(await stat(manifestFile).then(
      (st) => st.isFile(),
      () => false,
    ))
  ) {
    throw new BundlemirrorError(
      'E_CONFIG',
      `${realToplevel} holds no ${MANIFEST_FILE}, so no repository would be served`,
      {
        hint: 'serve a replica toplevel after its first pull, or give an origin its published tree with --bundles',
      },
    );
  }
  const log = opts.log === false ? null : (opts.log ?? stderrLog);
  const lfsWriters = opts.lfsWriters === undefined ? null : await LfsWriters.load(resolve(opts.lfsWriters));
  const pushToWrong = opts.pushTo === undefined ? null : pushToProblem(opts.pushTo);
  if (pushToWrong !== null) {
    throw new BundlemirrorError('E_CONFIG', `--push-to ${JSON.stringify(opts.pushTo)} ${pushToWrong}`, {
      hint: "pass the master server's base URL, e.g. http://master.example:8080; pushes go to the same /git/... path there",
    });
  }
  const host = opts.host ?? '127.0.0.1';
  const wantPort = opts.port ?? 8080;

  const openFiles = new OpenFileCache();
  const server = createServer(
    buildApp({
      openFiles,
      realBundles,
      realToplevel,
      manifestFile,
      log,
      lfsWriters,
      pushTo: opts.pushTo ?? null,
      onDemand,
      gitLimits: opts.gitLimits,
    }),
  );
  // a client that vanished without a FIN (the networks this tool is for) must not hold a socket forever;
  // busy git fetches are not idle: upload-pack sends keepalives while it computes a pack
  server.timeout = IDLE_SOCKET_MS;
  const inFlight = new Set<ServerResponse>();
  let drained: (() => void) | null = null;
  server.on('request', (_req, res: ServerResponse) => {
    inFlight.add(res);
    res.on('close', () => {
      inFlight.delete(res);
      if (inFlight.size === 0) drained?.();
    });
  });

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = `${host}:${wantPort}`;
      const hint =
        err.code === 'EADDRINUSE'
          ? 'another process uses this port; choose another --port'
          : err.code === 'EACCES'
            ? 'ports below 1024 need privileges; choose a port above 1024'
            : err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND'
              ? 'choose a --host address this machine has'
              : undefined;
      reject(
        new BundlemirrorError('E_CONFIG', `cannot listen on ${where}: ${err.code ?? err.message}`, {
          hint,
          cause: err,
        }),
      );
    });
    server.listen(wantPort, host, () => resolveListen());
  }).catch((err: unknown) => {
    openFiles.close();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | null = null;
  const close = ({ graceMs = 10_000 }: { graceMs?: number } = {}): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeIdleConnections();
      if (inFlight.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((done) => (drained = done)),
          new Promise<void>((done) => (timer = setTimeout(done, graceMs))),
        ]);
        clearTimeout(timer);
      }
      // idle keep-alive connections and anything past the grace period
      server.closeAllConnections();
      await closed;
      openFiles.close();
    })();
    return closing;
  };

  const reloadWriters = async (): Promise<number> => (lfsWriters ? lfsWriters.reload() : 0);
  return { url: `http://${hostPort(host, port)}`, host, port, close, reloadWriters };
}
