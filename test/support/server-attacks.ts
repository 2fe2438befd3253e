/**
 * Attacks a hostile client can make on `serve` and on a replica daemon's
 * listener, each against fresh real parts on 127.0.0.1. Shared by the
 * tests (serve-backends, serve-scope, notify-limits) and the randomized
 * runner (test/reliability/run.ts), which counts them. Each returns what
 * was refused and any sign that the attack worked.
 */
import { readdir, readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { BundlemirrorError } from '../../src/errors.js';
import { git } from '../../src/git/exec.js';
import { publish } from '../../src/origin/publish.js';
import { startListeners } from '../../src/replica/daemon/notify-listener.js';
import { memoryLog } from '../../src/replica/log.js';
import { startServer } from '../../src/server/server.js';
import { request } from './http.js';
import { makeRepo, tempDir, WorkTree } from './repos.js';

export interface ServerAttackResult {
  name: string;
  refused: { code: string; repo: string | undefined; what: string }[];
  problems: string[];
}

/** `git http-backend` processes that are children of this process (where the server runs). */
export async function backendChildren(): Promise<number> {
  let n = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if ((await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('http-backend')) n += 1;
    } catch {
      /* the process ended meanwhile */
    }
  }
  return n;
}

/** Samples backendChildren() until stopped; resolves with the largest count seen. */
export function watchBackends(): { stop: () => Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      max = Math.max(max, await backendChildren());
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return max;
    },
  };
}

/** Opens a raw connection, sends `head` (and nothing more), and collects what comes back until close (at most `limitMs`). */
export function rawRequest(
  url: string,
  head: string,
  opts: { read?: boolean; limitMs?: number } = {},
): { socket: Socket; reply: Promise<string> } {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.write(head);
  const chunks: Buffer[] = [];
  const reply = new Promise<string>((resolve) => {
    const timer = setTimeout(() => socket.destroy(), opts.limitMs ?? 30_000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
  if (opts.read === false) socket.pause();
  return { socket, reply };
}

export const HALF_SENT_POST =
  'POST /git/pub/a.git/git-upload-pack HTTP/1.1\r\nHost: mirror\r\nContent-Type: application/x-git-upload-pack-request\r\n' +
  'Content-Length: 1000\r\n\r\n0032want ';

const Q = '?service=git-upload-pack';

async function world<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await tempDir('bm-server-attack-');
  try {
    return await run(dir);
  } finally {
    await cleanup();
  }
}

const attacks: [string, (dir: string) => Promise<Omit<ServerAttackResult, 'name'>>][] = [
  [
    'a private repository over /git/',
    async (dir) => {
      const toplevel = join(dir, 'top');
      const out = join(dir, 'out');
      await makeRepo(dir, toplevel, 'pub/a.git', { commits: 1 });
      await makeRepo(dir, toplevel, 'private/secret.git', { commits: 1 });
      await publish({ toplevel, out, ignore: (p) => p.startsWith('/private/') });
      const server = await startServer({ bundles: out, toplevel, port: 0, log: false });
      const refused: ServerAttackResult['refused'] = [];
      const problems: string[] = [];
      try {
        for (const [method, target] of [
          ['GET', `/git/private/secret.git/info/refs${Q}`],
          ['POST', '/git/private/secret.git/git-upload-pack'],
          ['POST', '/git/private/secret.git/info/lfs/objects/batch'],
          ['GET', '/private/secret.git/config'],
        ] as const) {
          const r = await request(server.url, target, { method, body: method === 'POST' ? '0000' : undefined });
          if (r.status === 404)
            refused.push({ code: 'HTTP 404', repo: '/private/secret.git', what: `${method} ${target}` });
          else problems.push(`${method} ${target} answered ${r.status}`);
        }
        if ((await request(server.url, '/')).body.includes('secret'))
          problems.push('the page lists the private repository');
      } finally {
        await server.close();
      }
      return { refused, problems };
    },
  ],
  [
    'serve --bundles over repositories',
    async (dir) => {
      await makeRepo(dir, join(dir, 'srv', 'git'), 'private/secret.git', { commits: 1 });
      await publish({ toplevel: join(dir, 'srv', 'git'), out: join(dir, 'srv') });
      try {
        const server = await startServer({ bundles: join(dir, 'srv'), port: 0, log: false });
        await server.close();
        return { refused: [], problems: ['serve started on a directory holding a repository'] };
      } catch (err) {
        const code = err instanceof BundlemirrorError ? err.code : String(err);
        return {
          refused: [{ code, repo: undefined, what: 'serve --bundles /srv' }],
          problems: code === 'E_CONFIG' ? [] : [`refused with ${code}`],
        };
      }
    },
  ],
  [
    'a force-pushed commit by id',
    async (dir) => {
      const toplevel = join(dir, 'top');
      const out = join(dir, 'out');
      const { wt } = await makeRepo(dir, toplevel, 'pub/a.git', { commits: 1 });
      const kept = await wt.run(['rev-parse', 'HEAD']);
      const secret = await wt.commit('a secret');
      await wt.push('main');
      await wt.run(['reset', '--quiet', '--hard', kept]);
      await wt.push('main');
      await publish({ toplevel, out });
      const server = await startServer({ bundles: out, toplevel, port: 0, log: false });
      const refused: ServerAttackResult['refused'] = [];
      const problems: string[] = [];
      try {
        for (const version of ['2', '0']) {
          const client = await WorkTree.create(dir, `${server.url}/git/pub/a.git`);
          const got = await git(['-c', `protocol.version=${version}`, 'fetch', '--quiet', 'origin', secret], {
            cwd: client.dir,
            okCodes: [0, 1, 128],
          });
          if (got.code === 0) problems.push(`protocol v${version} handed out ${secret}`);
          else
            refused.push({
              code: `git exit ${got.code}`,
              repo: '/pub/a.git',
              what: `protocol v${version} want ${secret}`,
            });
        }
      } finally {
        await server.close();
      }
      return { refused, problems };
    },
  ],
  [
    '100 half-sent POSTs',
    async (dir) => {
      const toplevel = join(dir, 'top');
      const out = join(dir, 'out');
      await makeRepo(dir, toplevel, 'pub/a.git', { commits: 1 });
      await publish({ toplevel, out });
      const server = await startServer({
        bundles: out,
        toplevel,
        port: 0,
        log: false,
        gitLimits: { max: 4, bodyDeadlineMs: 2000 },
      });
      const problems: string[] = [];
      let replies: string[] = [];
      try {
        const watch = watchBackends();
        const sent = Array.from({ length: 100 }, () => rawRequest(server.url, HALF_SENT_POST));
        const clone = await git(
          ['clone', '--quiet', '--mirror', `${server.url}/git/pub/a.git`, join(dir, 'clone.git')],
          { okCodes: [0, 128] },
        );
        if (clone.code !== 0) problems.push('a clone beside them failed');
        replies = await Promise.all(sent.map((s) => s.reply));
        const max = await watch.stop();
        if (max > 4) problems.push(`${max} git http-backend processes at once (limit 4)`);
      } finally {
        await server.close({ graceMs: 100 });
      }
      const cut = replies.filter((r) => r.startsWith('HTTP/1.1 408 '));
      if (cut.length !== 100) problems.push(`${100 - cut.length} half-sent POSTs were not cut off with 408`);
      return { refused: cut.map(() => ({ code: 'HTTP 408', repo: '/pub/a.git', what: 'half-sent POST' })), problems };
    },
  ],
  [
    '200 wrong notify tokens',
    async () => {
      const log = memoryLog();
      const l = await startListeners({
        listen: { host: '127.0.0.1', port: 0 },
        socket: null,
        token: () => Buffer.from('the-right-token-0123456789'),
        notify: (paths) => ({ accepted: paths, ignored: [] }),
        metrics: async () => '',
        count: () => undefined,
        log,
      });
      const statuses: number[] = [];
      try {
        for (let i = 0; i < 200; i++) {
          const r = await request(l.url!, '/notify', {
            method: 'POST',
            headers: { authorization: `Bearer wrong-${i}` },
            body: '{"repos":["/a.git"]}',
          });
          statuses.push(r.status);
        }
      } finally {
        await l.close();
      }
      const problems: string[] = [];
      const warns = log.lines.filter((line) => line.startsWith('warn: '));
      // one line per kind as it happens, one summary per kind when the listener closes
      if (warns.length > 4) problems.push(`${warns.length} WARN lines for 200 refusals`);
      const unauthorized = statuses.filter((s) => s === 401).length;
      if (unauthorized > 10) problems.push(`${unauthorized} token guesses were checked (limit 10)`);
      const refused = statuses.map((s) => ({ code: `HTTP ${s}`, repo: undefined, what: 'wrong bearer token' }));
      if (statuses.some((s) => s !== 401 && s !== 429)) problems.push('a wrong token was not refused');
      return { refused, problems };
    },
  ],
];

/** Each attack once; `quick` leaves out the slower one (the half-sent POSTs). */
export async function runServerAttacks(
  opts: { quick?: boolean; onResult?: (r: ServerAttackResult) => void } = {},
): Promise<ServerAttackResult[]> {
  const results: ServerAttackResult[] = [];
  for (const [name, run] of attacks) {
    if (opts.quick && name === '100 half-sent POSTs') continue;
    let outcome: Omit<ServerAttackResult, 'name'>;
    try {
      outcome = await world(run);
    } catch (err) {
      outcome = { refused: [], problems: [`the attack run itself failed: ${(err as Error).message}`] };
    }
    const r = { name, ...outcome };
    results.push(r);
    opts.onResult?.(r);
  }
  return results;
}
