/**
 * grokmirror's UNIX socket listener: repository paths, one per line, from
 * whoever may write to the socket (its mode and group say who).
 */
import { chmod, chown, lstat, rm } from 'node:fs/promises';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { BundlemirrorError } from '../../errors.js';
import { repoPathProblem } from '../../git/refname.js';
import { MAX_BODY_BYTES, MAX_REPOS, REQUEST_TIMEOUT_MS, type ListenerOptions } from './notify-protocol.js';

/** grok-pull's listener: an existing socket file is replaced, anything else at that path is an error. */
export async function listenSocket(path: string, opts: ListenerOptions): Promise<{ close(): Promise<void> }> {
  const st = await lstat(path).catch(() => null);
  if (st) {
    if (!st.isSocket()) {
      throw new BundlemirrorError('E_CONFIG', `[pull] socket ${path} exists and is not a socket`, {
        hint: 'choose another path, or remove that file',
      });
    }
    if (await socketAnswers(path)) {
      throw new BundlemirrorError('E_CONFIG', `another process listens on [pull] socket ${path}`, {
        hint: 'stop the other grok-pull or bundlemirror daemon, or choose another path',
      });
    }
    await rm(path, { force: true });
  }
  const conns = new Set<Socket>();
  const server = createNetServer((conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    handleSocketConnection(conn, opts);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new BundlemirrorError('E_CONFIG', `cannot listen on [pull] socket ${path}: ${err.code ?? err.message}`, {
          hint: 'the directory must exist and be writable by this user',
          cause: err,
        }),
      ),
    );
    server.listen(path, () => resolve());
  });
  try {
    // the origin's hook runs as another user (git): the group decides, as the socket takes no token
    if (opts.socketGroup !== undefined && opts.socketGroup !== null) await chown(path, -1, opts.socketGroup);
    await chmod(path, opts.socketMode ?? 0o660);
  } catch (err) {
    server.close();
    throw new BundlemirrorError(
      'E_CONFIG',
      `cannot set the owner group or mode of [pull] socket ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      {
        hint: 'this user must belong to [pull] socket_group',
        cause: err,
      },
    );
  }
  return {
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of conns) c.destroy();
      await closed;
      const left = await lstat(path).catch(() => null);
      if (left?.isSocket()) await rm(path, { force: true });
    },
  };
}

function handleSocketConnection(conn: Socket, opts: ListenerOptions): void {
  conn.setEncoding('utf8');
  conn.setTimeout(REQUEST_TIMEOUT_MS, () => conn.destroy());
  conn.on('error', () => {});
  let pending = '';
  let total = 0;
  let finished = false;
  const take = (lines: string[]): void => {
    const batch: string[] = [];
    for (const raw of lines) {
      const line = raw.trim();
      if (line === '') {
        finished = true; // a blank line ends the message, as in grok-pull
        break;
      }
      const problem = repoPathProblem(line);
      if (problem || batch.length >= MAX_REPOS) {
        opts.count('invalid');
        opts.log.warn(
          `listener: socket: refused ${JSON.stringify(line.slice(0, 200))}: ${problem ?? `more than ${MAX_REPOS} paths`}; closing the connection`,
        );
        finished = true;
        break;
      }
      batch.push(line);
    }
    if (batch.length) {
      opts.count('accepted');
      opts.notify([...new Set(batch)], 'socket');
    }
    if (finished) conn.end();
  };
  conn.on('data', (chunk: string) => {
    if (finished) return;
    total += Buffer.byteLength(chunk);
    if (total > MAX_BODY_BYTES) {
      opts.count('invalid');
      opts.log.warn(`listener: socket: more than ${MAX_BODY_BYTES} bytes in one connection; closing it`);
      finished = true;
      conn.destroy();
      return;
    }
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    take(lines);
  });
  conn.on('end', () => {
    if (!finished && pending.trim() !== '') take([pending]);
    finished = true;
    conn.end();
  });
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    const done = (alive: boolean) => {
      c.destroy();
      resolve(alive);
    };
    c.setTimeout(1000, () => done(false));
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}
