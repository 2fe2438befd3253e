/**
 * Where the published tree puts things, as origin, replica, kit and server
 * all need to agree: the manifest's file name, a repository's directory for
 * its manifest path (`/pub/a.git` is `<root>/pub/a.git` on any disk and
 * `<base>/pub/a.git/index.json` on any host), and the strong ETag a bundle
 * is served with (its sha256, so a resumed download's If-Range holds across
 * hosts that serve the same tree).
 */
import { join, relative, sep } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { INDEX_FILE, type BundleRef } from './repo-index.js';

export const MANIFEST_FILE = 'manifest.js.gz';

/** The strong ETag of a content-addressed file (a bundle, an LFS object): its sha256. */
export function bundleEtag(sha256: string): string {
  return `"${sha256}"`;
}

/** The directory of a repository (manifest path `/pub/a.git`) under `root`, with `more` joined on. */
export function diskPathOf(root: string, manifestPath: string, ...more: string[]): string {
  return join(root, ...manifestPath.slice(1).split('/'), ...more);
}

/** The manifest path of a directory under `root`: the reverse of `diskPathOf`. */
export function manifestPathOf(root: string, dir: string): string {
  return '/' + relative(root, dir).split(sep).join('/');
}

export function indexUrl(bundlesBase: string, path: string): string {
  return new URL(
    path.slice(1).split('/').map(encodeURIComponent).join('/') + '/' + INDEX_FILE,
    bundlesBase.replace(/\/*$/, '/'),
  ).toString();
}

/**
 * Bundle URLs are relative to their index (a forkgroup member's reach into
 * its parent's directory); whatever the index says, the URL must stay on
 * the index's host and under the published tree's root.
 */
export function bundleUrl(index: string, bundle: BundleRef, repo: string, root?: string): string {
  const url = new URL(bundle.uri, index);
  const top = new URL(root ?? '/', index);
  if (url.origin !== top.origin || !url.pathname.startsWith(top.pathname.replace(/\/*$/, '/'))) {
    const where = url.toString() === bundle.uri ? '' : ` (${url.toString()})`;
    throw new BundlemirrorError('E_INDEX', `bundle ${bundle.uri} points outside the published tree${where}`, {
      repo,
      hint: 'the origin published an unsafe index; report it',
    });
  }
  return url.toString();
}

/**
 * A forkgroup's parent, the member the others build on: the one others
 * borrow objects from, else the one with the shortest path (`linux.git`
 * before `forks/linux-foo.git`). Origin and replica must choose alike.
 */
export function chooseParent(members: string[], referencedBy: Map<string, number>): string {
  return [...members].sort(
    (a, b) => (referencedBy.get(b) ?? 0) - (referencedBy.get(a) ?? 0) || a.length - b.length || (a < b ? -1 : 1),
  )[0]!;
}
