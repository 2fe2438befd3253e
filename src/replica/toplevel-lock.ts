/**
 * One `bundlemirror pull` per toplevel at a time (fsck's repairs and
 * import take the same lock): two on one tree would race on the same bare
 * repositories, temp files and state. The lock is
 * `<toplevel>/.bundlemirror/pull.lock`; how locks are held, recognised as
 * stale and taken over is src/lock/lock.ts.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { acquireLock, check, type LockRequest, type LockStatus, type Release } from '../lock/lock.js';
import { STATE_DIR } from './paths.js';

function pullLockPath(toplevel: string): string {
  return join(toplevel, STATE_DIR, 'pull');
}

/**
 * Takes the pull lock for `toplevel`: at once, or within `wait` ms, else
 * E_LOCKED naming the process that holds it. A missing toplevel is
 * E_TOPLEVEL (a mistake to report, not a directory to create).
 */
export async function acquireToplevelLock(
  toplevel: string,
  opts: Pick<LockRequest, 'wait' | 'onWait' | 'signal' | 'staleMs'> = {},
): Promise<Release> {
  try {
    await mkdir(join(toplevel, STATE_DIR));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') {
      throw new BundlemirrorError(
        'E_TOPLEVEL',
        `cannot use toplevel ${toplevel}: ${code === 'ENOENT' ? 'it does not exist' : (err as Error).message}`,
        {
          hint: 'create it, or fix [core] toplevel',
          cause: err,
        },
      );
    }
  }
  return acquireLock({ path: pullLockPath(toplevel), what: `bundlemirror pull on ${toplevel}`, ...opts });
}

/** Whether a pull holds the toplevel now, and who (for `status`). */
export function checkToplevelLock(toplevel: string): Promise<LockStatus> {
  return check(pullLockPath(toplevel));
}
