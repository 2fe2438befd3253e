/**
 * The error a download ends with when retrying stopped helping: what failed
 * last, how long nothing arrived, what the user can do about the cause, and
 * where the partial is kept for the next run.
 */
import { BundlemirrorError } from '../errors.js';
import { formatDuration } from '../format/duration.js';
import { adviceFor, type Failure } from './failure.js';
import type { PartialFile } from './partial-file.js';

/** The parts of a download's options the message names. */
export interface GiveUpSubject {
  url: string;
  expectedSize: number;
  resumeHint?: string | undefined;
}

export function giveUp(
  opts: GiveUpSubject,
  part: PartialFile,
  attempts: number,
  withoutProgress: number,
  lastProgressAt: number,
  last: Failure | undefined,
  restartReason: string | undefined,
): BundlemirrorError {
  const why = restartReason ?? last?.error.message ?? 'no progress';
  const waited = formatDuration((Date.now() - lastProgressAt) / 1000);
  return new BundlemirrorError(
    'E_DOWNLOAD',
    `${opts.url}: gave up after ${attempts} attempts, the last ${withoutProgress} without progress for ${waited} (last error: ${why})`,
    {
      hint: `${adviceFor(last?.cause)}; the partial download is kept (${part.size} of ${opts.expectedSize} bytes in ${part.path}); ${opts.resumeHint ?? 'the next pull resumes from there'}`,
      cause: last?.error,
    },
  );
}
