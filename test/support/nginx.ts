/**
 * Debian's nginx serving a published tree on 127.0.0.1, as a deployment
 * would put it behind any static host. Tests skip (and say so) when nginx
 * is not installed; `.ci/run` installs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { accepts, startOnFreePort } from './listener.js';

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? null;

/**
 * An nginx.conf serving `root` on 127.0.0.1:`port`, everything it writes
 * kept under `workDir`. `tuned`: as Debian's package ships it (sendfile,
 * a worker per core), for benchmarks; otherwise one small worker.
 */
export function nginxConfig(root: string, workDir: string, port: number, opts: { tuned?: boolean } = {}): string {
  // mkdtemp directories are 0700: workers must run as the user who made them
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const workers = opts.tuned ? 'worker_processes auto;\n' : 'worker_processes 1;\n';
  const events = `events { worker_connections ${opts.tuned ? 1024 : 256}; }\n`;
  const tuning = opts.tuned ? '  sendfile on;\n  tcp_nopush on;\n  keepalive_timeout 65;\n' : '';
  return (
    `${user}daemon off;\n${workers}pid ${workDir}/nginx.pid;\nerror_log ${workDir}/error.log;\n${events}` +
    `http {\n${tuning}  access_log ${workDir}/access.log;\n  client_body_temp_path ${workDir}/tmp/body;\n  proxy_temp_path ${workDir}/tmp/proxy;\n` +
    `  fastcgi_temp_path ${workDir}/tmp/fastcgi;\n  uwsgi_temp_path ${workDir}/tmp/uwsgi;\n  scgi_temp_path ${workDir}/tmp/scgi;\n` +
    `  types { application/octet-stream bundle; application/json json; }\n  default_type application/octet-stream;\n` +
    `  server {\n    listen 127.0.0.1:${port};\n    root ${root};\n    location ~ /\\. { deny all; }\n  }\n}\n`
  );
}

export interface Nginx {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * nginx serving `root` on a port of its own, from `bin` (the bench may have
 * just installed it). It is up once its pid file is there (nginx writes it
 * only after binding its port) and it accepts connections.
 */
export async function spawnNginx(
  root: string,
  workDir: string,
  opts: { bin: string; tuned?: boolean; env?: NodeJS.ProcessEnv },
): Promise<{ child: ChildProcess; port: number }> {
  await mkdir(join(workDir, 'tmp'), { recursive: true });
  const conf = join(workDir, 'nginx.conf');
  const pidFile = join(workDir, 'nginx.pid');
  let stderr = '';
  return startOnFreePort(
    'nginx',
    async (port) => {
      await rm(pidFile, { force: true });
      await writeFile(conf, nginxConfig(root, workDir, port, { tuned: opts.tuned ?? false }));
      stderr = '';
      const c = spawn(opts.bin, ['-c', conf, '-p', workDir], { env: opts.env, stdio: ['ignore', 'ignore', 'pipe'] });
      c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
      return c;
    },
    () => stderr,
    async (port) => existsSync(pidFile) && (await accepts(port)),
  );
}

export async function startNginx(root: string, workDir: string): Promise<Nginx> {
  if (!NGINX) throw new Error('nginx is not installed');
  const { child, port } = await spawnNginx(root, workDir, { bin: NGINX });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGQUIT');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}
