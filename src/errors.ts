/**
 * Typed errors with stable codes. The CLI maps them to exit statuses and
 * prints `message` plus `hint`; tests match on `code`, never on wording.
 */

export const ExitStatus = {
  ok: 0,
  repoFailed: 1,
  usage: 2,
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
  | 'E_FINGERPRINT'
  | 'E_DISK'
  | 'E_NOT_FOUND'
  | 'E_PURGE'
  | 'E_KIT'
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
  | 'E_BUSY';

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

  /** Usage and configuration problems stop everything; the rest are per repository. */
  get exitStatus(): number {
    return this.code === 'E_USAGE' || this.code === 'E_CONFIG' || this.code === 'E_LOCKED' || this.code === 'E_TOPLEVEL'
      ? ExitStatus.usage
      : ExitStatus.repoFailed;
  }

  /** One line for a terminal: `repo: message (hint)`. */
  describe(): string {
    const where = this.repo ? `${this.repo}: ` : '';
    const hint = this.hint ? `\n  hint: ${this.hint}` : '';
    return `${where}${this.message} [${this.code}]${hint}`;
  }
}

export function isBundlemirrorError(err: unknown): err is BundlemirrorError {
  return err instanceof BundlemirrorError;
}

/** Attach a repository to an error raised deeper down, keeping its code. */
export function forRepo(err: unknown, repo: string): BundlemirrorError {
  if (err instanceof BundlemirrorError) {
    if (err.repo) return err;
    return new BundlemirrorError(err.code, err.message, { repo, hint: err.hint, cause: err.cause ?? err });
  }
  const e = err as NodeJS.ErrnoException;
  if (e && (e.code === 'ENOSPC' || e.code === 'EDQUOT')) {
    return new BundlemirrorError('E_DISK', `disk full: ${e.message}`, {
      repo,
      hint: 'free some space; the next run resumes where this one stopped',
      cause: err,
    });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BundlemirrorError('E_GIT', message, { repo, cause: err });
}
