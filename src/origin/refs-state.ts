/**
 * What the last publish saw of each repository's ref files
 * (src/git/refs-signature.ts) and the fingerprint they held then, kept in
 * the published tree as `.refs-state.json` (a dotfile: never served, and
 * gc leaves it alone). Origin-local: a lost or unreadable file only means
 * one `git show-ref` per repository on the next publish.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import { isObjectId } from '../git/refname.js';

export const REFS_STATE = '.refs-state.json';

export interface KnownRefs {
  signature: string;
  fingerprint: string;
}

export async function readRefsState(out: string): Promise<Map<string, KnownRefs>> {
  const known = new Map<string, KnownRefs>();
  try {
    const doc = JSON.parse(await readFile(join(out, REFS_STATE), 'utf8')) as { version?: unknown; repos?: unknown };
    if (doc.version !== 1 || typeof doc.repos !== 'object' || doc.repos === null) return known;
    for (const [path, v] of Object.entries(doc.repos as Record<string, unknown>)) {
      const k = v as Partial<KnownRefs> | null;
      if (typeof k?.signature === 'string' && typeof k.fingerprint === 'string' && isObjectId(k.fingerprint))
        known.set(path, { signature: k.signature, fingerprint: k.fingerprint });
    }
  } catch {
    /* none yet, or unreadable: every repository is asked with git */
  }
  return known;
}

/** Writes the state when it differs from what was read. */
export async function writeRefsState(
  out: string,
  before: Map<string, KnownRefs>,
  after: Map<string, KnownRefs>,
): Promise<void> {
  const same =
    before.size === after.size &&
    [...after].every(
      ([p, k]) => before.get(p)?.signature === k.signature && before.get(p)?.fingerprint === k.fingerprint,
    );
  if (same) return;
  const repos = Object.fromEntries([...after].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  await writeFileAtomic(join(out, REFS_STATE), JSON.stringify({ version: 1, repos }) + '\n');
}
