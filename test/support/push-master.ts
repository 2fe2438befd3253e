/**
 * A push-enabled master for tests: stock `git http-backend` with
 * receive-pack switched on, behind a minimal HTTP server on 127.0.0.1 that
 * serves the repositories under `toplevel` at `/git/<repo path>` (the same
 * paths `serve` uses, so a replica's `--push-to` is this server's URL).
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { gitEnv } from '../../src/git/exec.js';
import { readCgiHead } from '../../src/server/cgi.js';

export interface PushMaster {
  url: string;
  /** `METHOD path?query status` per request, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function startPushMaster(toplevel: string): Promise<PushMaster> {
  const requests: string[] = [];
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const [path = '', query = ''] = (req.url ?? '').split('?', 2);
    if (!path.startsWith('/git/')) {
      res.statusCode = 404;
      res.end();
      return;
    }
    const child = spawn('git', ['-c', 'http.receivepack=true', 'http-backend'], {
      env: {
        ...gitEnv(),
        GIT_PROJECT_ROOT: toplevel,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: path.slice('/git'.length),
        QUERY_STRING: query,
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
        REMOTE_ADDR: '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    req.pipe(child.stdin);
    const head = await readCgiHead(child.stdout);
    res.statusCode = head.status;
    for (const [k, v] of head.headers) res.setHeader(k, v);
    requests.push(`${req.method} ${req.url} ${head.status}`);
    res.write(head.rest);
    await pipeline(child.stdout, res);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
