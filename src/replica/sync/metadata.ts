/**
 * Repository metadata a replica mirrors besides refs: HEAD, description and
 * owner (gitweb.owner), as grokmirror sets them.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../fs/atomic.js';
import { configGet, configSet, configUnset, readHead, setHead } from '../../git/repo.js';
import { readDescription } from '../../git/inspect.js';
import type { ManifestEntry } from '../../manifest/manifest.js';

export interface RepoMetadata {
  head: string | null;
  description: string | null;
  owner: string | null;
}

export function wantedMetadata(entry: ManifestEntry, defaultOwner: string | null): RepoMetadata {
  return {
    head: entry.head ?? null,
    description: entry.description ?? null,
    owner: entry.owner ?? defaultOwner,
  };
}

export async function readMetadata(dir: string, repo: string): Promise<RepoMetadata> {
  const description = await readDescription(dir);
  return { head: await readHead(dir, repo), description, owner: await configGet(dir, 'gitweb.owner', repo) };
}

/** Writes what differs; returns the names of the fields it changed. */
export async function applyMetadata(dir: string, want: RepoMetadata, repo: string): Promise<string[]> {
  const have = await readMetadata(dir, repo);
  const changed: string[] = [];
  if (want.head && want.head !== have.head) {
    await setHead(dir, want.head, repo);
    changed.push('head');
  }
  if (want.description !== null && want.description !== have.description) {
    await writeFileAtomic(join(dir, 'description'), want.description + '\n');
    changed.push('description');
  }
  if (want.owner !== have.owner) {
    if (want.owner === null) await configUnset(dir, 'gitweb.owner', repo);
    else await configSet(dir, 'gitweb.owner', want.owner, repo);
    changed.push('owner');
  }
  return changed;
}
