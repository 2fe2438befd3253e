/**
 * `pull --json` and `publish --json` run as a user would, with the report
 * parsed: tests assert on counts, actions, codes and fingerprints, never on
 * the wording of the human summary.
 */
import type { PullJsonReport, PullJsonRepo } from '../../src/replica/pull-json.js';
import type { PublishJsonReport } from '../../src/origin/publish-json.js';
import { runCli, type CliResult } from './cli.js';

type CliOptions = Parameters<typeof runCli>[1];

function parsed<T>(r: CliResult, what: string): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`${what} printed no JSON report (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** `bundlemirror pull --json ARGS`. */
export async function pullJson(args: string[], opts?: CliOptions): Promise<CliResult & { report: PullJsonReport }> {
  const r = await runCli(['pull', '--json', ...args], opts);
  return { ...r, report: parsed<PullJsonReport>(r, 'pull') };
}

/** `bundlemirror publish --json ARGS`. */
export async function publishJson(
  args: string[],
  opts?: CliOptions,
): Promise<CliResult & { report: PublishJsonReport }> {
  const r = await runCli(['publish', '--json', ...args], opts);
  return { ...r, report: parsed<PublishJsonReport>(r, 'publish') };
}

/** The report's entry for one repository (undefined when the run did nothing to it). */
export function repoIn(report: PullJsonReport, path: string): PullJsonRepo | undefined {
  return report.repos.find((r) => r.path === path);
}
