/**
 * What `serve --bundles DIR` refuses to start on. The published tree is
 * served file by file to anyone, so DIR must be what publish writes (a
 * manifest, indexes, bundle-lists, bundles) and nothing private: pointed
 * at `/srv` by mistake, a plain static server would hand out a
 * repository's config, refs and objects, or a working tree's files, to
 * whoever asks for their paths.
 */
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { MANIFEST_FILE } from '../manifest/tree.js';

/** A git directory has these three at its top (what git itself checks). */
function looksLikeGitDir(entries: Dirent[]): boolean {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const head = byName.get('HEAD');
  const objects = byName.get('objects');
  const refs = byName.get('refs');
  return !!head && (head.isFile() || head.isSymbolicLink()) && !!objects?.isDirectory() && !!refs?.isDirectory();
}

/**
 * The first directory under `root` (itself included) that is a git
 * repository, bare or with a `.git`, or null. Symlinks are not followed
 * (the server refuses any that lead out of the tree); directories whose
 * names start with a dot are never served, so only their `.git` matters.
 */
async function findRepository(root: string): Promise<string | null> {
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    if (looksLikeGitDir(entries) || entries.some((e) => e.name === '.git')) return dir;
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) pending.push(join(dir, e.name));
  }
  return null;
}

export async function checkPublishedTree(realBundles: string): Promise<void> {
  const manifest = join(realBundles, MANIFEST_FILE);
  const isFile = await stat(manifest).then(
    (st) => st.isFile(),
    () => false,
  );
  if (!isFile) {
    throw new BundlemirrorError('E_CONFIG', `${realBundles} holds no ${MANIFEST_FILE}: it is not a published tree`, {
      hint: 'run `bundlemirror publish --toplevel DIR --out DIR` first and serve its --out, or serve a replica with --toplevel only',
    });
  }
  const repo = await findRepository(realBundles);
  if (repo !== null) {
    const where =
      repo === realBundles
        ? `${realBundles} is a git repository`
        : `${realBundles} contains a git repository at ${relative(realBundles, repo)}`;
    throw new BundlemirrorError(
      'E_CONFIG',
      `refusing to serve ${where}: its files would be served to anyone as they are`,
      {
        hint: 'point --bundles at the directory publish writes (--out), and serve repositories with --toplevel',
      },
    );
  }
}
