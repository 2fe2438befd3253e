/**
 * Repository metadata a replica mirrors besides refs: HEAD, description and
 * owner (gitweb.owner), as grokmirror sets them.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../fs/atomic.js';
import { configSet, configUnset, readHead, readMirrorConfig, setHead, type MirrorConfig } from '../../git/repo.js';
import { readDescription, readHeadFile } from '../../git/inspect.js';
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

/**
 * The repository's metadata. `config` is its config as `readMirrorConfig`
 * read it (a sync has it already; read here otherwise). HEAD of a repository
 * that keeps refs in files is that file, as `git symbolic-ref` reads it
 * (publish reads it so too): no git process.
 */
export async function readMetadata(dir: string, repo: string, config?: MirrorConfig): Promise<RepoMetadata> {
  const { owner, refStorage } = config ?? (await readMirrorConfig(dir, repo));
  const head = refStorage === 'files' ? await readHeadFile(dir) : await readHead(dir, repo);
  return { head, description: await readDescription(dir), owner };
}

/** Writes what differs; returns the names of the fields it changed. */
export async function applyMetadata(
  dir: string,
  want: RepoMetadata,
  repo: string,
  config?: MirrorConfig,
): Promise<string[]> {
  const have = await readMetadata(dir, repo, config);
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
