/**
 * Where `git fetch` closes the gaps bundles leave: `[bundlemirror] git_url`,
 * else `[remote] site`, but never a repository on a local path. git reads a
 * local repository with a local user's full trust: its config, its
 * alternates (the objects of any repository on this machine), files that
 * point anywhere. None of that is confined to the published tree the way
 * the download door confines a `file:` tree, so a `file:` site (a mounted
 * tree) closes no gaps unless `git_url` names the origin over the network.
 */
import { isLocalGitUrl } from '../../git/repo.js';
import type { Reader } from '../../config/reader.js';

/** The git URL gaps are fetched from; '' when there is none (a `file:` site without git_url). */
export function gitFetchUrl(r: Reader, site: string): string {
  const raw = r.str('bundlemirror', 'git_url', '').replace(/\/+$/, '');
  if (raw !== '') {
    if (isLocalGitUrl(raw))
      r.fail(
        'bundlemirror',
        'git_url',
        `is a local repository (${JSON.stringify(raw)}): git fetch from a local path is not supported, because git would read that repository's config and alternates outside the published tree`,
        "name the origin's git URL over the network (https://origin.example/git), or remove git_url to mirror from the bundles alone",
      );
    return raw;
  }
  return isLocalGitUrl(site) ? '' : site;
}
