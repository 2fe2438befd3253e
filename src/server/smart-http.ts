/**
 * Read-only smart HTTP at `/git/<repo path>`: the gap a replica cannot
 * close from bundles (the last few commits) is fetched here with plain git.
 *
 * Only the two requests of a fetch or clone reach `git http-backend`:
 * `GET info/refs?service=git-upload-pack` and `POST git-upload-pack`, and
 * only for a repository the served manifest lists (by its path or one of
 * its symlinks) that is a bare repository inside the toplevel. Pushes are
 * refused or redirected to the master (push.ts) before any process starts;
 * dumb-HTTP paths, repositories the manifest does not list, non-bare
 * repositories and anything outside the toplevel are 404.
 *
 * Protocol v2 is never offered (the client's `Git-Protocol` header is not
 * passed on): a v2 upload-pack sends any object it has when asked by id,
 * so a commit force-pushed away, or a secret removed from every ref, would
 * stay fetchable. Under v0 over HTTP (stateless RPC), upload-pack checks
 * that every object asked for is reachable from a ref.
 */
import { lstat, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { spawnHttpBackend } from '../git/http-backend.js';
import { repoPathProblem } from '../git/refname.js';
import { readCgiHead } from './cgi.js';
import type { ServedManifest } from './served-manifest.js';
import { methodNotAllowed, sendText } from './reply.js';
import { resolveInside, splitTarget, splitUrlPath } from './safe-path.js';
import { splitLfsPath, type lfsApi } from './lfs/handler.js';
import { callerOf } from './lfs/auth.js';
import type { LfsWriters } from '../lfs/writers.js';
import { answerPush } from './push.js';
import { retryAfterSeconds, type BackendLimits } from './backend-limits.js';

export const GIT_PREFIX = '/git';

export interface SmartHttpOptions {
  /** Real path of the toplevel directory holding the bare repositories. */
  realToplevel: string;
  /** The served manifest: only its repositories (and their symlink names) are reachable. */
  manifest: () => Promise<ServedManifest>;
  /** Where http-backend's complaints go. */
  log: (line: string) => void;
  /** The Git LFS API at `<repo>/info/lfs`; null answers 404 there. */
  lfs?: ReturnType<typeof lfsApi> | null;
  /** LFS writers: they may reach repositories the manifest does not list yet. */
  lfsWriters?: LfsWriters | null;
  /** The master's base URL: pushes get a 307 to the same path there; null refuses them. */
  pushTo?: string | null;
  /** How many backends may run, how long requests wait for one, and how request bodies are bounded. */
  limits: BackendLimits;
}

/**
 * A bare repository has HEAD, objects/ and refs/ at its top. Checking the
 * exact directory matters: given `work`, http-backend would also try
 * `work/.git` and `work.git`, reaching a working tree's repository.
 */
export async function isBareRepository(dir: string): Promise<boolean> {
  try {
    const [head, objects, refs] = await Promise.all([
      lstat(join(dir, 'HEAD')),
      stat(join(dir, 'objects')),
      stat(join(dir, 'refs')),
    ]);
    return (head.isFile() || head.isSymbolicLink()) && objects.isDirectory() && refs.isDirectory();
  } catch {
    return false;
  }
}

type Service =
  | { kind: 'advertise'; repo: string[] }
  | { kind: 'upload-pack'; repo: string[] }
  | { kind: 'push'; repo: string[]; advertisement: boolean }
  | { kind: 'other'; reason: string };

function serviceOf(segments: string[], query: URLSearchParams): Service {
  const last = segments[segments.length - 1];
  const isInfoRefs = segments.length >= 2 && segments[segments.length - 2] === 'info' && last === 'refs';
  const repo = segments.slice(0, isInfoRefs ? -2 : -1);
  const service = query.get('service');
  if (last === 'git-receive-pack' || (isInfoRefs && service === 'git-receive-pack'))
    return { kind: 'push', repo, advertisement: isInfoRefs };
  if (last === 'git-upload-pack') return { kind: 'upload-pack', repo };
  if (isInfoRefs) {
    return service === 'git-upload-pack'
      ? { kind: 'advertise', repo }
      : { kind: 'other', reason: 'only smart HTTP is served (info/refs?service=git-upload-pack)' };
  }
  return { kind: 'other', reason: 'not a smart HTTP path (expected info/refs or git-upload-pack)' };
}

export function smartHttpHandler(opts: SmartHttpOptions) {
  /** The repository a request names, when the served manifest lists it and it is a bare repository inside the toplevel. */
  const servedRepository = async (
    segments: string[],
    anyUnderToplevel = false,
  ): Promise<{ repoPath: string; realRepo: string } | null> => {
    const asked = `/${segments.join('/')}`;
    if (segments.length === 0 || repoPathProblem(asked)) return null;
    const repoPath = (await opts.manifest()).names.get(asked) ?? (anyUnderToplevel ? asked : undefined);
    if (repoPath === undefined) return null;
    const realRepo = await resolveInside(opts.realToplevel, repoPath.slice(1).split('/'));
    return realRepo !== null && (await isBareRepository(realRepo)) ? { repoPath, realRepo } : null;
  };

  return async function serveGit(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    const { path, query } = splitTarget(target);
    const check = splitUrlPath(path.slice(GIT_PREFIX.length) || '/');
    if (!check.ok)
      return sendText(req, res, check.status, check.status === 400 ? `bad request: ${check.reason}` : 'not found');
    const params = new URLSearchParams(query);
    const lfsPath = splitLfsPath(check.segments);
    if (lfsPath && opts.lfs) {
      // git-lfs uploads a new repository's objects before its refs are pushed, so before a publish lists it:
      // a writer may reach any bare repository under the toplevel, everyone else only the served ones
      const writer = callerOf(req, opts.lfsWriters ?? null).kind === 'writer';
      const repo = await servedRepository(lfsPath.repo, writer);
      if (repo === null) return sendText(req, res, 404, `no repository at /${lfsPath.repo.join('/')} on this server`);
      return opts.lfs(req, res, {
        repoDir: repo.realRepo,
        repoPath: repo.repoPath,
        rest: lfsPath.rest,
        query: params,
        target,
      });
    }
    const service = serviceOf(check.segments, params);
    if (service.kind === 'other') return sendText(req, res, 404, `not found: ${service.reason}`);
    const repo = await servedRepository(service.repo);
    if (service.kind === 'push')
      return answerPush(req, res, { pushTo: opts.pushTo ?? null, path, advertisement: service.advertisement, repo });
    if (repo === null) return sendText(req, res, 404, `no repository at /${service.repo.join('/')} on this mirror`);
    const expected = service.kind === 'advertise' ? 'GET' : 'POST';
    if (req.method !== expected) return methodNotAllowed(req, res, [expected]);
    const { repoPath, realRepo } = repo;

    const encoding = req.headers['content-encoding']?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== 'gzip' && encoding !== 'x-gzip' && encoding !== 'identity') {
      return sendText(
        req,
        res,
        415,
        `unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 40))} (gzip or identity)`,
      );
    }
    const relRepo = relative(opts.realToplevel, realRepo).split(sep).join('/');
    await runBackend(req, res, opts, {
      pathInfo: `/${relRepo}/${service.kind === 'advertise' ? 'info/refs' : 'git-upload-pack'}`,
      queryString: service.kind === 'advertise' ? 'service=git-upload-pack' : '',
      method: expected,
      contentType: req.headers['content-type'],
      contentEncoding: encoding === 'identity' ? undefined : encoding,
      repoPath,
    });
  };
}

interface BackendCall {
  pathInfo: string;
  queryString: string;
  method: 'GET' | 'POST';
  contentType: string | undefined;
  contentEncoding: string | undefined;
  repoPath: string;
}

async function runBackend(
  req: IncomingMessage,
  res: ServerResponse,
  opts: SmartHttpOptions,
  call: BackendCall,
): Promise<void> {
  const limits = opts.limits;
  let body: Buffer | null = null;
  if (call.method === 'POST') {
    // the whole body first, so a client that sends half of it holds no process
    const read = await limits.readBody(req);
    if (!read.ok) {
      const retry: Record<string, string> =
        read.status === 503 ? { 'Retry-After': String(retryAfterSeconds(limits)) } : {};
      if (!res.destroyed) sendText(req, res, read.status, `${read.reason}; retry`, { Connection: 'close', ...retry });
      return;
    }
    body = read.body;
  }
  const abort = new AbortController();
  // a fixed number of close listeners per response (access log, metrics, shutdown, this abort, and
  // stream.pipeline's own five): more than Node's default warning threshold, and no leak
  res.setMaxListeners(20);
  // a client that hangs up mid-clone should not leave upload-pack packing for nobody
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const release = await limits.acquire(abort.signal);
  if (release === null) {
    if (res.destroyed) return;
    opts.log(`git http-backend ${call.repoPath}: all ${limits.max} backends busy, answered 503`);
    return sendText(req, res, 503, `all ${limits.max} git backends of this server are busy; retry shortly`, {
      'Retry-After': String(retryAfterSeconds(limits)),
    });
  }
  const child = spawnHttpBackend({
    projectRoot: opts.realToplevel,
    pathInfo: call.pathInfo,
    method: call.method,
    queryString: call.queryString,
    contentType: call.contentType,
    contentLength: body === null ? undefined : String(body.length),
    contentEncoding: call.contentEncoding,
    remoteAddr: req.socket.remoteAddress,
    signal: abort.signal,
  });
  // the slot is free once the process is gone, not when the response is: a killed client's backend may linger
  child.on('close', release);
  child.on('error', release);

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => {
    if (stderr.length < 8192) stderr += c;
  });
  child.on('close', (code) => {
    if (code !== 0 && stderr.trim() && !abort.signal.aborted)
      opts.log(`git http-backend ${call.repoPath}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`);
  });
  const failed = new Promise<never>((_resolve, reject) => {
    child.on('error', reject);
  });
  failed.catch(() => undefined);

  child.stdin.on('error', () => {
    /* http-backend may answer (an error) without reading the whole body */
  });
  child.stdin.end(body ?? undefined);

  let head;
  try {
    head = await Promise.race([readCgiHead(child.stdout), failed]);
  } catch (err) {
    abort.abort();
    if (res.headersSent || res.destroyed) return;
    const why = stderr.trim().split('\n').pop() || (err as Error).message;
    opts.log(`git http-backend ${call.repoPath}: ${why}`);
    return sendText(req, res, 502, `git http-backend failed for ${call.repoPath}: ${why}`);
  }

  res.statusCode = head.status;
  for (const [name, value] of head.headers) {
    try {
      res.setHeader(name, value);
    } catch {
      /* a header Node considers invalid is dropped rather than failing the response */
    }
  }
  try {
    res.write(head.rest);
    await pipeline(child.stdout, res);
  } catch {
    abort.abort();
    res.destroy();
  }
}
