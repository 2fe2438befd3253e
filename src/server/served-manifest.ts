/**
 * The manifest a `serve` answers for: the published one in `--bundles`, or
 * a replica's own `<toplevel>/manifest.js.gz` when it serves without a
 * published tree. It decides everything `serve` hands out about
 * repositories: smart HTTP at `/git/` and the page list exactly its
 * entries, so a repository that publish left out (`--ignore`, no refs) or
 * that merely sits under the toplevel is never reachable.
 *
 * Re-read when the file is replaced (publish and pull rename it into
 * place), checked with one stat per use, so a publish takes effect on the
 * next request without a restart.
 */
import { readFile, stat } from 'node:fs/promises';
import { parseManifest, type Manifest, type ManifestProblem } from '../manifest/manifest.js';

export interface ServedManifest {
  /** False when the file is missing or unreadable: nothing is served then. */
  present: boolean;
  manifest: Manifest;
  /** Entries refused by the parser (or why the whole file was), for the page. */
  problems: ManifestProblem[];
  /**
   * Every path a client may name, mapped to the repository it stands for:
   * each entry's own path, and the `symlinks` it lists (grokmirror's other
   * names for the same repository).
   */
  names: Map<string, string>;
}

const ABSENT: ServedManifest = { present: false, manifest: {}, problems: [], names: new Map() };

async function loadServedManifest(file: string): Promise<ServedManifest> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch {
    return ABSENT;
  }
  let parsed: ReturnType<typeof parseManifest>;
  try {
    parsed = parseManifest(bytes, file);
  } catch (err) {
    // an unreadable manifest serves no repository rather than the last good one's: it may have been withdrawn
    return {
      present: true,
      manifest: {},
      problems: [{ path: file, problem: (err as Error).message }],
      names: new Map(),
    };
  }
  const names = new Map<string, string>();
  for (const [path, entry] of Object.entries(parsed.manifest)) {
    names.set(path, path);
    for (const link of entry.symlinks ?? []) if (!parsed.manifest[link]) names.set(link, path);
  }
  return { present: true, manifest: parsed.manifest, problems: parsed.problems, names };
}

/** A cached view of one manifest file, refreshed whenever the file changes. */
export function servedManifestSource(file: string): () => Promise<ServedManifest> {
  let cached: { key: string; value: Promise<ServedManifest> } | null = null;
  return async () => {
    let key = 'none';
    try {
      const st = await stat(file, { bigint: true });
      key = `${st.ino}-${st.size}-${st.mtimeNs}`;
    } catch {
      /* no manifest (yet, or any more) */
    }
    if (!cached || cached.key !== key) {
      const value = loadServedManifest(file);
      cached = { key, value };
    }
    return cached.value;
  };
}
