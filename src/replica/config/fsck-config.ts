/**
 * grokmirror's `[fsck]` section, as `bundlemirror fsck` honours it.
 *
 * Honoured: `frequency`, `ignore_errors`, `reclone_on_errors`, `repack`,
 * `extra_repack_flags`, `extra_repack_flags_full`, `commitgraph`. Added:
 * `full_repack_every` (grokmirror 1's key), `connectivity_only`,
 * `report_hook`. The mail keys (`report_to` ...) get a warning that names
 * `report_hook`, since bundlemirror sends no mail; grokmirror's object
 * storage keys and its own status file are accepted with a warning that
 * says why they do not apply. Reading every key here also lets a near miss
 * (`frequncy`) stop with E_CONFIG instead of being ignored.
 */
import type { Reader } from '../../config/reader.js';
import type { FsckConfig } from './config-schema.js';

const S = 'fsck';

/** grokmirror keys that do not apply to a bundlemirror replica, and why. */
const NOT_APPLICABLE: Record<string, string> = {
  statusfile: 'bundlemirror keeps when it checked each repository in .bundlemirror/fsck.json under the toplevel',
  prune:
    'bundlemirror does not run git prune: repack -a -d already drops unreachable packed objects, and a forkgroup store is never pruned',
  precious: 'bundlemirror does not set extensions.preciousObjects',
  baselines: "bundlemirror's forkgroup stores come from the origin's forkgroups, not from local analysis",
  islandcores: 'forkgroup stores are repacked with one delta island per member, none preferred',
  obstrepo_merge_strategy: "bundlemirror's forkgroup stores come from the origin's forkgroups, not from local analysis",
  preload_bundle_outdir: "bundles come from the origin's published tree; publish one with bundlemirror publish",
};

/** Keys that bundlemirror replaces, and with what. */
const REPLACED: Record<string, string> = {
  report_to: 'bundlemirror sends no mail: set [fsck] report_hook to a command that gets the report as JSON on stdin',
  report_from: 'bundlemirror sends no mail: set [fsck] report_hook (see report_to)',
  report_subject: 'bundlemirror sends no mail: set [fsck] report_hook (see report_to)',
  report_mailhost: 'bundlemirror sends no mail: set [fsck] report_hook (see report_to)',
  repack_flags: 'bundlemirror chooses the base repack flags itself; put additional ones in [fsck] extra_repack_flags',
  full_repack_flags:
    'bundlemirror chooses the base repack flags itself; put additional ones for full repacks in [fsck] extra_repack_flags_full',
};

const ABSENT = '\u0000absent';

export function readFsckConfig(r: Reader): FsckConfig {
  const present = (key: string) => r.str(S, key, ABSENT) !== ABSENT;
  for (const [key, why] of Object.entries(NOT_APPLICABLE))
    if (present(key)) r.warn(S, key, 'unused', `a grokmirror setting that bundlemirror does not use: ${why}`);
  for (const [key, instead] of Object.entries(REPLACED)) if (present(key)) r.warn(S, key, 'replaced', instead);

  const flags = (key: string): string[] => {
    const words = r
      .list(S, key, [])
      .flatMap((l) => l.split(/\s+/))
      .filter((w) => w !== '');
    for (const w of words)
      if (!w.startsWith('-'))
        r.fail(S, key, `takes git repack options, each starting with "-"; got ${JSON.stringify(w)}`);
    return words;
  };
  return {
    frequencyDays: r.int(S, 'frequency', 30, { min: 1, what: 'a number of days, at least 1' }),
    ignoreErrors: r.list(S, 'ignore_errors', []),
    recloneOnErrors: present('reclone_on_errors') ? r.list(S, 'reclone_on_errors', []) : null,
    repack: r.bool(S, 'repack', false),
    extraRepackFlags: flags('extra_repack_flags'),
    extraRepackFlagsFull: flags('extra_repack_flags_full'),
    fullRepackEvery: r.int(S, 'full_repack_every', 10, { min: 0 }),
    commitgraph: r.bool(S, 'commitgraph', true),
    connectivityOnly: r.bool(S, 'connectivity_only', false),
    reportHook: r.commands(S, 'report_hook'),
  };
}
