/**
 * The servers a scenario talks to, each a real process on 127.0.0.1:
 * `bundlemirror serve` (our CLI, what an origin runs), `git daemon`
 * (git://, what a plain git mirror uses), Debian's nginx configured as its
 * package ships (sendfile on, one worker per core). Every one is stopped by
 * the scenario that started it; `stopAll` catches the rest on the way out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI, cleanEnv } from './proc.js';
import { spawnNginx } from '../../test/support/nginx.js';
import { spawnGitDaemon } from '../../test/support/listener.js';
import { servedUrl } from '../../test/support/cli.js';

export interface Running {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

const running = new Set<Running>();

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((r) => r.stop().catch(() => {})));
}

function managed(child: ChildProcess, url: string, port: number): Running {
  const r: Running = {
    url,
    port,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        running.delete(r);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
  running.add(r);
  return r;
}

function spawnServer(
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): { child: ChildProcess; stderr: () => string } {
  const child = spawn(cmd, args, { env: env ?? cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  // keep only the tail: serve writes one access-log line per request
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-8192)));
  return { child, stderr: () => err };
}

/**
 * `bundlemirror serve --bundles OUT [--toplevel TOP]` as its own process,
 * on a port the kernel picks (`--port 0`; serve names its URL on stderr):
 * a port found free beforehand can be taken by any client socket before
 * serve binds it.
 */
export async function startServe(bundles: string, toplevel?: string): Promise<Running> {
  const args = [CLI, 'serve', '--bundles', bundles, '--host', '127.0.0.1', '--port', '0'];
  if (toplevel) args.push('--toplevel', toplevel);
  const { child, stderr } = spawnServer(process.execPath, args);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const url = servedUrl(stderr());
    if (url) return managed(child, url, Number(new URL(url).port));
    if (child.exitCode !== null) throw new Error(`bundlemirror serve exited early: ${stderr().slice(-1000)}`);
    if (Date.now() > deadline) throw new Error('bundlemirror serve did not name its port within 20 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `git daemon --export-all --base-path=TOP`: git:// for plain clones and fetches. */
export async function startGitDaemon(toplevel: string): Promise<Running> {
  const { child, port } = await spawnGitDaemon(toplevel, cleanEnv());
  return managed(child, `git://127.0.0.1:${port}`, port);
}

/** Installs a Debian package the bench needs, if missing (the bench runs as root on the CI machine). */
export function ensureDebianPackage(pkg: string, binary: string): boolean {
  if (existsSync(binary)) return true;
  try {
    process.stderr.write(`bench: installing Debian package ${pkg}\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], {
      stdio: 'ignore',
      env,
      timeout: 300_000,
    });
  } catch (err) {
    process.stderr.write(`bench: could not install ${pkg}: ${(err as Error).message}\n`);
  }
  return existsSync(binary);
}

/** nginx serving `root` the way Debian's default site does: sendfile, tcp_nopush, a worker per core. */
export async function startNginx(root: string, workDir: string): Promise<Running> {
  // looked up now: the bench may have just installed it
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  if (!bin) throw new Error('nginx is not installed');
  const { child, port } = await spawnNginx(root, workDir, { bin, tuned: true, env: cleanEnv() });
  const r = managed(child, `http://127.0.0.1:${port}`, port);
  // nginx finishes gracefully on SIGQUIT; SIGTERM is a fast stop, fine here
  return r;
}
