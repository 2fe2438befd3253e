/**
 * A replica's recorded state as its own reader sees it (state.json and its
 * journal, src/replica/state-file.ts), and the raw text of those files for
 * tests that look for what must never be written raw.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openState } from '../../src/replica/state.js';
import type { RepoState } from '../../src/replica/state-file.js';

export async function recordedState(toplevel: string): Promise<Record<string, RepoState>> {
  return (await openState(toplevel, { warn: () => {} })).all();
}

/** state.json and every journal beside it, concatenated ('' when there are none). */
export async function stateFilesText(toplevel: string): Promise<string> {
  const dir = join(toplevel, '.bundlemirror');
  const names = (await readdir(dir).catch(() => [] as string[])).filter(
    (n) => n === 'state.json' || /^state\..+\.journal$/.test(n),
  );
  const texts = await Promise.all(names.sort().map((n) => readFile(join(dir, n), 'utf8').catch(() => '')));
  return texts.join('\n');
}
