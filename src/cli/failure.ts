/**
 * How the CLI ends on an error: ours print their message and hint and exit
 * with their status; anything else is a bug and prints its stack.
 */
import {
  BundlemirrorError,
  ExitStatus,
  forRepo,
  internalError,
  isDiskFullErrno,
  isPermissionErrno,
  permissionError,
} from '../errors.js';

/** Errors of our own type print their message and hint; anything else is a bug and prints its stack. */
export function fail(err: unknown): void {
  if (err instanceof BundlemirrorError) {
    process.stderr.write(`bundlemirror: ${err.describe()}\n`);
    process.exitCode = err.exitStatus;
  } else if (isPermissionErrno(err) && typeof err.syscall === 'string') {
    // a toplevel first pulled as root, a log file owned by another user: ownership to fix, not a bug
    const e = permissionError(err);
    process.stderr.write(`bundlemirror: ${e.describe()}\n`);
    process.exitCode = e.exitStatus;
  } else if (isDiskFullErrno(err)) {
    // a full disk (state file, local manifest) is for the user to fix, not a bug to report with a stack trace
    const e = forRepo(err, '');
    process.stderr.write(`bundlemirror: ${e.describe()}\n`);
    process.exitCode = e.exitStatus;
  } else {
    // a bug: its stack, a request to report it, and a status of its own (E_INTERNAL)
    process.stderr.write(`bundlemirror: ${internalError(err).describe()}\n`);
    process.exitCode = ExitStatus.internal;
  }
}
