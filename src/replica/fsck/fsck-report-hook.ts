/**
 * `[fsck] report_hook`: where grok-fsck mails its report, bundlemirror runs
 * commands with the report as JSON on stdin (the same document as
 * `fsck --json`, with only the entries that have something to say). Run
 * only when the run found something: a problem, a repair, an error. Like
 * pull's hooks it runs under `hook_timeout`, and its failure is logged,
 * never the run's.
 */
import { safeJson } from '../../format/untrusted.js';
import type { PullConfig } from '../config/config.js';
import { runHooks } from '../hooks.js';
import type { PullLog } from '../log.js';
import { reportWorthSending, type FsckReport } from './fsck-report.js';

export async function runReportHooks(
  config: PullConfig,
  report: FsckReport,
  opts: { log: PullLog; signal?: AbortSignal },
): Promise<void> {
  if (config.fsck.reportHook.length === 0) return;
  const worth = reportWorthSending(report);
  if (!worth) return;
  await runHooks('report_hook', config.fsck.reportHook, [], {
    stdin: safeJson(worth, 1) + '\n',
    log: opts.log,
    timeoutMs: config.bundlemirror.hookTimeoutMs,
    signal: opts.signal,
    cwd: config.core.toplevel,
  });
}
