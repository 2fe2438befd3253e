/**
 * The Git LFS API of `serve` at `/git/<repo path>/info/lfs`, the URL
 * git-lfs derives from a smart-HTTP remote, for the repositories smart HTTP
 * serves. Downloads are anonymous and come from the repository's own store
 * (an origin's, or a replica's after pull). Uploads and locks need a
 * writer (HTTP Basic against `--lfs-writers`); a replica started with
 * `--push-to URL` sends them to the master with a 307 instead, and one
 * without writers refuses them with a 403 that says where to go.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { configGet } from '../../git/repo.js';
import type { LfsWriters } from '../../lfs/writers.js';
import { requestOrigin } from '../base-url.js';
import { callerOf, LFS_AUTHENTICATE } from './auth.js';
import { handleBatch } from './batch.js';
import { sendLfsError } from './json.js';
import { createLock, listLocks, unlock, verifyLocks } from './locks.js';
import { receiveObject, sendObject, verifyObject } from './objects.js';

export interface LfsApiOptions {
  /** null: no uploads or locks here (a replica, or an origin that takes none). */
  writers: LfsWriters | null;
  /** The master's base URL: uploads and locks are redirected there (307, same path). */
  pushTo: string | null;
  log: (line: string) => void;
}

export interface LfsRequest {
  /** Real path of the bare repository. */
  repoDir: string;
  /** `/pub/a.git` */
  repoPath: string;
  /** Path components after `info/lfs`. */
  rest: string[];
  query: URLSearchParams;
  /** The raw request target, for redirects. */
  target: string;
}

/** Splits `<repo...>/info/lfs/<rest...>`; null when the path is not an LFS API path. */
export function splitLfsPath(segments: string[]): { repo: string[]; rest: string[] } | null {
  for (let i = segments.length - 2; i >= 1; i--) {
    if (segments[i] === 'info' && segments[i + 1] === 'lfs')
      return { repo: segments.slice(0, i), rest: segments.slice(i + 2) };
  }
  return null;
}

export function lfsApi(opts: LfsApiOptions) {
  /** The writer's name, or null after answering with 307, 403 or 401. */
  const authorizeWrite = async (req: IncomingMessage, res: ServerResponse, r: LfsRequest): Promise<string | null> => {
    if (opts.pushTo) {
      res.statusCode = 307;
      res.setHeader('Location', `${opts.pushTo.replace(/\/+$/, '')}${r.target}`);
      res.setHeader('Content-Length', 0);
      res.end();
      return null;
    }
    if (!opts.writers) {
      const master = await configGet(r.repoDir, 'bundlemirror.master', r.repoPath).catch(() => null);
      const where = master
        ? `upload and lock at the master, ${master}`
        : 'upload and lock at the master this repository is mirrored from';
      sendLfsError(req, res, 403, `this server takes no LFS uploads or locks for ${r.repoPath}: ${where}`);
      return null;
    }
    const caller = callerOf(req, opts.writers);
    if (caller.kind === 'writer') return caller.name;
    if (caller.kind === 'refused')
      opts.log(`LFS ${r.repoPath}: refused credentials from ${req.socket.remoteAddress ?? '?'}`);
    sendLfsError(
      req,
      res,
      401,
      caller.kind === 'refused'
        ? 'wrong name or token for LFS uploads and locks'
        : 'LFS uploads and locks need a writer name and token',
      {},
      {
        'LFS-Authenticate': LFS_AUTHENTICATE,
      },
    );
    return null;
  };

  return async function serveLfs(req: IncomingMessage, res: ServerResponse, r: LfsRequest): Promise<void> {
    const method = req.method ?? 'GET';
    const [a, b, c, extra] = r.rest;
    const lfsUrl = `${requestOrigin(req)}${lfsBasePath(r.repoPath)}`;
    const wrong = (allowed: string[]) =>
      sendLfsError(
        req,
        res,
        405,
        `method ${method} not allowed here (allowed: ${allowed.join(', ')})`,
        {},
        { Allow: allowed.join(', ') },
      );

    if (a === 'objects' && b === 'batch' && c === undefined) {
      if (method !== 'POST') return wrong(['POST']);
      return handleBatch(req, res, {
        repoDir: r.repoDir,
        lfsUrl,
        authorizeWrite: () => authorizeWrite(req, res, r),
        authorization: req.headers.authorization,
      });
    }
    if (a === 'objects' && b !== undefined && c === undefined) {
      if (method === 'GET' || method === 'HEAD')
        return sendObject(req, res, r.repoDir, b, { log: opts.log, repoPath: r.repoPath });
      if (method !== 'PUT') return wrong(['GET', 'HEAD', 'PUT']);
      if ((await authorizeWrite(req, res, r)) === null) return;
      return receiveObject(req, res, r.repoDir, b, r.query);
    }
    if (a === 'verify' && b === undefined) {
      if (method !== 'POST') return wrong(['POST']);
      if ((await authorizeWrite(req, res, r)) === null) return;
      return verifyObject(req, res, r.repoDir);
    }
    if (a === 'locks' && extra === undefined) {
      const isList = b === undefined;
      const isVerify = b === 'verify' && c === undefined;
      const isUnlock = b !== undefined && c === 'unlock';
      if (!isList && !isVerify && !isUnlock) return sendLfsError(req, res, 404, 'not an LFS locks path');
      const allowed = isList ? ['GET', 'POST'] : ['POST'];
      if (!allowed.includes(method)) return wrong(allowed);
      const user = await authorizeWrite(req, res, r);
      if (user === null) return;
      if (isList)
        return method === 'GET' ? listLocks(req, res, r.repoDir, r.query) : createLock(req, res, r.repoDir, user);
      if (isVerify) return verifyLocks(req, res, r.repoDir, user);
      return unlock(req, res, r.repoDir, b!, user);
    }
    return sendLfsError(req, res, 404, 'not an LFS API path');
  };
}

/** `/git/<repo path>/info/lfs` for a manifest path, each component percent-encoded. */
function lfsBasePath(repoPath: string): string {
  return `/git/${repoPath.slice(1).split('/').map(encodeURIComponent).join('/')}/info/lfs`;
}
