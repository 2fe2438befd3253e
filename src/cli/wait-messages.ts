/**
 * What a download that waits for a failing server prints: the cause, when
 * it tries again and when it gives up. At most one line per file every
 * 10 s (backoff waits are a few seconds each) unless the cause changes, so
 * a five-minute outage is a dozen lines, not a hundred.
 */
import { BundlemirrorError } from '../errors.js';
import { formatDuration, parseDuration } from '../format/duration.js';
import { printable } from '../format/untrusted.js';
import { describeCause } from '../transfer/failure.js';
import type { RetryWait } from '../transfer/retry-policy.js';

const EVERY_MS = 10_000;

export function waitMessages(
  print: (line: string) => void,
  now: () => number = Date.now,
): (repo: string | null, w: RetryWait) => void {
  const last = new Map<string, { at: number; cause: string | undefined }>();
  return (repo, w) => {
    const key = w.url;
    const t = now();
    const before = last.get(key);
    if (before && before.cause === w.cause && t - before.at < EVERY_MS) return;
    last.set(key, { at: t, cause: w.cause });
    const where = repo ? `${repo}: ` : '';
    const file = w.url.replace(/^.*\//, '');
    print(
      printable(
        `${where}waiting for ${file}: ${describeCause(w.cause)}; trying again in ${formatDuration(w.delayMs / 1000)}, ` +
          `giving up in ${formatDuration(Math.max(0, w.giveUpAt - t) / 1000)} (attempt ${w.attempt}: ${w.message})`,
      ),
    );
  };
}

/** `--retry-for` as milliseconds, for commander. */
export function retryForOption(value: string): number {
  const ms = parseDuration(value);
  if (ms === null || ms <= 0)
    throw new BundlemirrorError('E_USAGE', `--retry-for ${JSON.stringify(value)} is not a duration`, {
      hint: 'write it as 30s, 10m or 1h',
    });
  return ms;
}
