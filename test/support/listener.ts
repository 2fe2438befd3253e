/**
 * Starting a server that must be told its port (nginx, `git daemon`): a
 * port found free a moment ago can be taken before the server binds it,
 * by another test's server or by any client socket, and the server then
 * exits at once. Such a start is tried again on another port, at most
 * three times; a server counts as up once it accepts a connection and is
 * still running after it (so a connection to whoever else holds the port
 * does not count).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const ATTEMPTS = 3;
const WAIT_MS = 20_000;

export function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/**
 * Runs `start(port)` on a free port until the server it spawns listens
 * there; `describe()` says why it did not (its stderr) when every attempt
 * failed. `ready(port)` says the server is up; by default a connection is
 * accepted, which a server that exits at once when it cannot bind (`git
 * daemon`) makes enough. A server that keeps trying to bind for a while
 * (nginx, about 2.5 s) needs a sign of its own (its pid file).
 */
export async function startOnFreePort(
  what: string,
  start: (port: number) => Promise<ChildProcess> | ChildProcess,
  describe: () => string = () => '',
  ready: (port: number) => Promise<boolean> = accepts,
): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = await start(port);
    const deadline = Date.now() + WAIT_MS;
    while (!exited(child) && Date.now() < deadline) {
      if (await ready(port)) {
        // a server that could not bind exits at once: give it that moment
        await new Promise((r) => setTimeout(r, 50));
        if (!exited(child) && (await ready(port))) return { child, port };
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!exited(child)) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not listen on ${port} within ${WAIT_MS / 1000} s: ${describe()}`);
    }
    if (attempt === ATTEMPTS) throw new Error(`${what} exited ${attempt} times before listening: ${describe()}`);
  }
}

/** `git daemon` exporting every repository under `toplevel` over git:// on 127.0.0.1, on a port of its own. */
export async function spawnGitDaemon(
  toplevel: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; port: number }> {
  let stderr = '';
  return startOnFreePort(
    'git daemon',
    (port) => {
      stderr = '';
      const child = spawn(
        'git',
        [
          'daemon',
          '--reuseaddr',
          '--export-all',
          `--base-path=${toplevel}`,
          '--listen=127.0.0.1',
          `--port=${port}`,
          toplevel,
        ],
        { env, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
      return child;
    },
    () => stderr,
  );
}
