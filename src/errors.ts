/**
 * Typed errors with stable codes. The CLI maps them to exit statuses and
 * prints `message` plus `hint`; tests match on `code`, never on wording.
 */
import { accessSync, constants } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';

import { printable } from './format/untrusted.js';

/** How `describe()` puts the hint on a line of its own (the log keeps that one line break). */
export const HINT = '\n  hint: ';

export const ExitStatus = {
  ok: 0,
  repoFailed: 1,
  usage: 2,
  /** 128 + the signal's number, as a shell reports a process the signal ended. */
  interruptedBySigint: 130,
  interruptedBySigterm: 143,
  /** A bug in bundlemirror (sysexits' EX_SOFTWARE): the stack is printed, to be reported. */
  internal: 70,
} as const;

export type ErrorCode =
  | 'E_USAGE'
  | 'E_CONFIG'
  | 'E_TOPLEVEL'
  | 'E_LOCKED'
  | 'E_GIT'
  | 'E_UNSAFE_NAME'
  | 'E_SYMLINK'
  | 'E_MANIFEST'
  | 'E_INDEX'
  | 'E_BUNDLE_VERIFY'
  | 'E_PREREQUISITES'
  | 'E_DOWNLOAD'
  | 'E_HTTP'
  | 'E_REDIRECT'
  | 'E_FINGERPRINT'
  | 'E_DISK'
  | 'E_NOT_FOUND'
  /** `publish -x` of a repository that is still on disk. */
  | 'E_REPO_EXISTS'
  | 'E_KIT'
  /** fsck found a repository corrupt and left it so (`--no-repair`, or no `reclone_on_errors` line matched). */
  | 'E_CORRUPT'
  /** A manifest or index.json without the signature `[remote] allowed_signers` requires. */
  | 'E_SIGNATURE_MISSING'
  /** A signature that does not match its file (tampered, truncated, another file's). */
  | 'E_SIGNATURE_INVALID'
  /** A valid signature by a key allowed_signers does not list. */
  | 'E_SIGNATURE_UNTRUSTED'
  /** A validly signed file older than one this replica already accepted (a replayed tree). */
  | 'E_ROLLBACK'
  /** ssh-keygen missing, or unable to sign with the key given. */
  | 'E_SIGNATURE_TOOL'
  // the on-demand service: each refusal names the rule that refused the URL
  | 'E_URL_INVALID'
  | 'E_URL_SCHEME'
  | 'E_URL_USERINFO'
  | 'E_URL_NOT_ALLOWED'
  | 'E_URL_ADDRESS'
  | 'E_URL_REDIRECT'
  | 'E_REPO_TOO_LARGE'
  | 'E_UPSTREAM'
  | 'E_BUSY'
  | 'E_PERMISSION'
  | 'E_INTERRUPTED'
  /** An object store failed or could not be reached (s3:// targets). */
  | 'E_STORE'
  /** No credentials, or the store refused them (missing key, wrong key, access denied). */
  | 'E_STORE_AUTH'
  /** The bucket of an s3:// target does not exist at the endpoint. */
  | 'E_STORE_BUCKET'
  /** A bug in bundlemirror, not a problem with the repository, the network or the disk. */
  | 'E_INTERNAL';

export interface ErrorDetails {
  /** The repository concerned, as its manifest path (`/pub/a.git`) when known. */
  repo?: string | undefined;
  /** What the user can do about it. */
  hint?: string | undefined;
  cause?: unknown;
}

export class BundlemirrorError extends Error {
  readonly code: ErrorCode;
  readonly repo: string | undefined;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'BundlemirrorError';
    this.code = code;
    this.repo = details.repo;
    this.hint = details.hint;
  }

  /** Usage and configuration problems stop everything; the rest are per repository; a bug is a bug. */
  get exitStatus(): number {
    if (this.code === 'E_INTERNAL') return ExitStatus.internal;
    return this.code === 'E_USAGE' ||
      this.code === 'E_CONFIG' ||
      this.code === 'E_LOCKED' ||
      this.code === 'E_TOPLEVEL' ||
      this.code === 'E_REPO_EXISTS' ||
      this.code === 'E_PERMISSION' ||
      this.code === 'E_STORE_AUTH' ||
      this.code === 'E_STORE_BUCKET'
      ? ExitStatus.usage
      : ExitStatus.repoFailed;
  }

  /** One line for a terminal: `repo: message (hint)`, with whatever an origin put in it made harmless. */
  describe(): string {
    const where = this.repo ? `${this.repo}: ` : '';
    const hint = this.hint ? `${HINT}${printable(this.hint)}` : '';
    // a bug is reported with where it happened; each line made harmless on its own, the line breaks kept
    const stack =
      this.code === 'E_INTERNAL' && this.cause instanceof Error && this.cause.stack
        ? '\n' + this.cause.stack.split('\n').map(printable).join('\n')
        : '';
    return printable(`${where}${this.message} [${this.code}]`) + hint + stack;
  }
}

/**
 * Ctrl-C or SIGTERM stopped the work: not a failure. Partial downloads are
 * kept, nothing is recorded as failing, and running the same command again
 * resumes. The command that catches it fills in `keptBytes` and `rerun`.
 */
export class InterruptedError extends BundlemirrorError {
  keptBytes: number | null = null;
  /** What to run again, e.g. "rerun clone"; default "rerun to resume". */
  rerun: string | null = null;

  constructor(readonly signal: 'SIGINT' | 'SIGTERM') {
    super('E_INTERRUPTED', `interrupted by ${signal}`);
    this.name = 'InterruptedError';
  }

  override get exitStatus(): number {
    return this.signal === 'SIGINT' ? ExitStatus.interruptedBySigint : ExitStatus.interruptedBySigterm;
  }

  override describe(): string {
    const kept = this.keptBytes === null ? '' : `; ${formatMiB(this.keptBytes)} kept`;
    return `interrupted${kept}; ${this.rerun ?? 'rerun to resume'}`;
  }
}

function formatMiB(bytes: number): string {
  const mib = bytes / (1 << 20);
  return `${mib >= 10 || mib === 0 ? mib.toFixed(0) : mib.toFixed(1)} MiB`;
}

/** True for an error that only says the work was interrupted (ours, or a git process the same signal ended). */
export function isInterruption(err: unknown): err is InterruptedError {
  return err instanceof InterruptedError;
}

/**
 * EACCES/EPERM on a path we must write (a toplevel first pulled as root, a
 * log file owned by someone else): the fix is ownership, not a retry.
 */
export function permissionError(err: NodeJS.ErrnoException, repo?: string): BundlemirrorError {
  const path = err.path ?? (err as { dest?: string }).dest;
  const who = currentUser() ?? '$(id -un)';
  const owner = path ? blockingPath(path) : undefined;
  return new BundlemirrorError(
    'E_PERMISSION',
    `permission denied${path ? `: ${path}` : ''} (${err.syscall ?? 'access'}: ${err.code})`,
    {
      repo,
      hint: owner
        ? `this user (${who}) cannot write ${owner} (was an earlier run done as another user, e.g. root?); fix the owner, e.g. chown -R ${who} ${shellQuote(owner)}`
        : 'check the owner and mode of the toplevel, the log file and the config',
      cause: err,
    },
  );
}

export function isPermissionErrno(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

/** A file system with no room left (or none under this user's quota). */
export function isDiskFullErrno(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** The path itself when it exists and is not writable, else its nearest existing ancestor that is not: what to chown. */
function blockingPath(path: string): string {
  for (let p = path; dirname(p) !== p; p = dirname(p)) {
    try {
      accessSync(p, constants.W_OK);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return p;
    }
  }
  return path;
}

function currentUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null;
  }
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function isBundlemirrorError(err: unknown): err is BundlemirrorError {
  return err instanceof BundlemirrorError;
}

/**
 * What went wrong, as one of our errors, for a repository (`repo`; '' when
 * none): our own errors keep their code (GitError included); the errno
 * errors of the file system and the network get theirs; anything else (a
 * TypeError, a RangeError, a plain Error) is a bug and becomes E_INTERNAL,
 * never a git failure.
 */
export function forRepo(err: unknown, repo: string): BundlemirrorError {
  const where = repo || undefined;
  if (err instanceof BundlemirrorError) {
    if (err.repo || !where) return err;
    return new BundlemirrorError(err.code, err.message, { repo: where, hint: err.hint, cause: err.cause ?? err });
  }
  const e = err as NodeJS.ErrnoException;
  if (isPermissionErrno(err) && typeof e.syscall === 'string') return permissionError(e, where);
  if (isDiskFullErrno(err)) {
    return new BundlemirrorError('E_DISK', `disk full: ${e.message}`, {
      repo: where,
      hint: 'free some space; the next run resumes where this one stopped',
      cause: err,
    });
  }
  if (isNetworkErrno(err)) return new BundlemirrorError('E_DOWNLOAD', e.message, { repo: where, cause: err });
  // an errno from a system call (EIO, EROFS, EMFILE, ENOENT on a file we read): the disk or the system, not us
  if (isErrno(err) && typeof e.syscall === 'string')
    return new BundlemirrorError('E_DISK', e.message, { repo: where, cause: err });
  return internalError(err, where);
}

/** A bug: says so, keeps the original error (its stack is printed) and asks for a report. */
export function internalError(err: unknown, repo?: string): BundlemirrorError {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new BundlemirrorError('E_INTERNAL', `internal error: ${message}`, {
    repo,
    hint: 'this is a bug in bundlemirror; please report it with the lines below',
    cause: err,
  });
}

const NETWORK_ERRNOS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

function isErrno(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^E[A-Z0-9_]+$/.test(code);
}

function isNetworkErrno(err: unknown): boolean {
  return isErrno(err) && NETWORK_ERRNOS.has(err.code!);
}
