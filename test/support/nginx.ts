/**
 * Debian's nginx serving a published tree on 127.0.0.1, as a deployment
 * would put it behind any static host. Tests skip (and say so) when nginx
 * is not installed; `.ci/run` installs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) ?? null;

export async function freePort(): Promise<number> {
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

export async function startNginx(root: string, workDir: string): Promise<Nginx> {
  if (!NGINX) throw new Error('nginx is not installed');
  await mkdir(join(workDir, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = join(workDir, 'nginx.conf');
  await writeFile(conf, nginxConfig(root, workDir, port));
  const child: ChildProcess = spawn(NGINX, ['-c', conf, '-p', workDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  // wait until it accepts connections
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(
      () => true,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
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
