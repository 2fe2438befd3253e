/**
 * What a failed request was, and whether another attempt could succeed: the
 * one place that sorts statuses and errors into retryable trouble (a server
 * that is down, a link that stalls or drops) and final answers (a 404, a
 * malformed URL, a redirect we refuse), and words what the user can do.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { HttpRequestError, HttpTimeoutError, TooManyRedirectsError } from './http-get.js';
import { BundlemirrorError, type ErrorCode } from '../errors.js';
import { parseRetryAfter } from './backoff.js';
import { FILE_MISSING_HEADER, FILE_TREE_HEADER, type FileMissing } from './file-response.js';

/** Raised by our own idle watchdog: headers arrived, then the bytes stopped. */
export class StallError extends Error {
  readonly code = 'E_STALL';
  constructor(readonly idleMs: number) {
    super(`no data for ${idleMs} ms`);
    this.name = 'StallError';
  }
}

/** What kind of trouble a failure is, so a message can say what we wait for and what the user can do. */
export type FailureCause =
  | 'refused'
  | 'unreachable'
  | 'dns'
  | 'timeout'
  | 'stall'
  | 'dropped'
  | 'server-error'
  | 'throttled'
  | 'not-found'
  | 'other';

/** A failed attempt, and whether another attempt could succeed. */
export interface Failure {
  error: BundlemirrorError;
  retryable: boolean;
  /** The server asked us to wait this long (Retry-After). */
  retryAfterMs?: number | undefined;
  cause?: FailureCause | undefined;
}

/** What a waiting download tells the person watching: why it waits. */
export function describeCause(cause: FailureCause | undefined): string {
  switch (cause) {
    case 'refused':
      return 'the server is down (connection refused)';
    case 'unreachable':
      return 'the network cannot reach the server';
    case 'dns':
      return 'the host name does not resolve';
    case 'timeout':
      return 'the server does not answer';
    case 'stall':
      return 'the transfer stalled';
    case 'dropped':
      return 'the connection dropped';
    case 'server-error':
      return 'the server answers with errors';
    case 'throttled':
      return 'the server asks us to slow down';
    case 'not-found':
      return 'the file is not there';
    default:
      return 'the transfer failed';
  }
}

/** What the user can do about a cause, when retrying did not help. */
export function adviceFor(cause: FailureCause | undefined): string {
  switch (cause) {
    case 'refused':
    case 'timeout':
      return 'the server is down or not listening; check that it runs, or wait until it is back';
    case 'dns':
      return 'check the host name in the URL, and the DNS of this machine';
    case 'unreachable':
      return 'check the network between this machine and the server';
    case 'server-error':
    case 'throttled':
      return 'the server is overloaded or failing; try again later';
    case 'not-found':
      return 'check the URL';
    default:
      return 'the link keeps failing; try again when it is better';
  }
}

const STATUS_TEXT: Record<number, string> = {
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  410: 'Gone',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Classifies a response status we did not ask for. */
export function failureFromStatus(url: string, status: number, headers: IncomingHttpHeaders): Failure {
  const what = `GET ${url} answered ${status}${STATUS_TEXT[status] ? ` ${STATUS_TEXT[status]}` : ''}`;
  const missing = headers[FILE_MISSING_HEADER];
  if (status === 404 && typeof missing === 'string')
    return fileNotFound(url, missing as FileMissing, headers[FILE_TREE_HEADER]);
  if (status === 404 || status === 410) {
    return {
      retryable: false,
      cause: 'not-found',
      error: new BundlemirrorError('E_NOT_FOUND', what, {
        hint: 'the origin no longer publishes this file; check the remote URL, or pull again once the origin has republished',
      }),
    };
  }
  if (status === 408 || status === 429 || status >= 500) {
    return {
      retryable: true,
      cause: status === 429 ? 'throttled' : 'server-error',
      retryAfterMs: status === 429 || status === 503 ? parseRetryAfter(headers['retry-after']) : undefined,
      error: new BundlemirrorError('E_HTTP', what, { hint: 'the origin is overloaded or failing; try again later' }),
    };
  }
  return {
    retryable: false,
    error: new BundlemirrorError('E_HTTP', what, {
      hint:
        status === 401 || status === 403
          ? 'the origin refuses this client; check access to the remote'
          : 'check the remote URL and the origin server',
    }),
  };
}

/**
 * A `file:` tree's 404 (file-response.ts), worded for a mounted directory
 * rather than a server. It keeps why, so that a caller that knows what the
 * file is (the manifest) can say it in its own terms.
 */
export class FileTreeNotFound extends BundlemirrorError {
  constructor(
    readonly url: string,
    readonly why: FileMissing,
    /** The published tree's root directory. */
    readonly tree: string,
    /** Why, without the URL. */
    readonly reason: string,
    hint: string,
  ) {
    super('E_NOT_FOUND', `${url}: ${reason}`, { hint });
  }
}

function fileNotFound(url: string, why: FileMissing, root: unknown): Failure {
  const tree = typeof root === 'string' ? root : 'the published tree';
  const [reason, hint] =
    why === 'no-tree'
      ? [
          `the published tree ${tree} is not there`,
          'check that the filesystem holding it is mounted on this machine, and that [remote] site and manifest name it',
        ]
      : why === 'not-a-file'
        ? [
            'not a regular file in the published tree (a directory, a FIFO or a device has its name)',
            'this replica reads regular files only; report it to whoever publishes the tree',
          ]
        : [
            'no such file in the published tree',
            "the tree on this mount lacks it: check that the mount shows the origin's latest publish (a network filesystem's cache can lag), then pull again",
          ];
  return { retryable: false, cause: 'not-found', error: new FileTreeNotFound(url, why, tree, reason, hint) };
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
  // a file: tree on NFS: a handle gone stale when the origin replaced the file; opening it again works
  'ESTALE',
]);

/**
 * Classifies an error thrown while connecting or receiving. Network trouble
 * is retryable; a malformed URL or a redirect loop is not. Errors that are
 * not about the network (disk, programming errors) are not classified here:
 * they are returned as not retryable with their original cause.
 */
export function failureFromError(url: string, err: unknown, code: ErrorCode): Failure {
  if (err instanceof BundlemirrorError) return { error: err, retryable: false };
  if (err instanceof StallError) {
    return {
      retryable: true,
      cause: 'stall',
      error: new BundlemirrorError(code, `GET ${url}: the transfer stalled (${err.message})`, {
        hint: 'the link stopped delivering data; the next attempt resumes where this one stopped',
        cause: err,
      }),
    };
  }
  if (err instanceof TooManyRedirectsError) {
    return {
      retryable: false,
      error: new BundlemirrorError('E_HTTP', `GET ${url}: too many redirects`, {
        hint: 'check the remote URL',
        cause: err,
      }),
    };
  }
  if (err instanceof HttpTimeoutError) {
    return {
      retryable: true,
      cause: err.event === 'response' || err.event === 'send' ? 'stall' : 'timeout',
      error: new BundlemirrorError(code, `GET ${url}: timed out (${err.event})`, {
        hint: 'the origin is slow or unreachable; the next attempt resumes where this one stopped',
        cause: err,
      }),
    };
  }
  const errno = (err as { code?: unknown } | null)?.code;
  const codeText = typeof errno === 'string' ? errno : '';
  if (codeText.startsWith('ERR_INVALID') || codeText === 'ERR_UNSUPPORTED_PROTOCOL') {
    return {
      retryable: false,
      error: new BundlemirrorError('E_HTTP', `GET ${url}: ${(err as Error).message}`, {
        hint: 'check the remote URL',
        cause: err,
      }),
    };
  }
  if (err instanceof HttpRequestError || TRANSIENT_CODES.has(codeText) || codeText.startsWith('HPE_')) {
    const cause = causeOfErrno(codeText);
    return {
      retryable: true,
      cause,
      error: new BundlemirrorError(code, `GET ${url}: ${(err as Error).message}${codeText ? ` (${codeText})` : ''}`, {
        hint:
          cause === 'dropped'
            ? 'the network dropped the transfer; the next attempt resumes where this one stopped'
            : adviceFor(cause),
        cause: err,
      }),
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  // a file: tree (a mount) the replica's user may not read: what to fix is on this machine, not at the origin
  const hint =
    codeText === 'EACCES' || codeText === 'EPERM'
      ? 'this user may not read the file; check the permissions of the mounted tree (or run as a user who can read it)'
      : undefined;
  return { retryable: false, error: new BundlemirrorError(code, `GET ${url}: ${message}`, { hint, cause: err }) };
}

function causeOfErrno(code: string): FailureCause {
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns';
  if (code === 'ENETUNREACH' || code === 'ENETDOWN' || code === 'EHOSTUNREACH' || code === 'EHOSTDOWN')
    return 'unreachable';
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'dropped';
}
