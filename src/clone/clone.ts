/**
 * `clone`: one working clone for a person on a bad link. The bundles come
 * over resumable HTTP into `DIR/.git/bundlemirror/`, so running the same
 * command again after Ctrl-C or a dropped link continues where it stopped;
 * git fetch then brings whatever the bundles do not hold.
 */
import type { RetryWait } from '../transfer/retry-policy.js';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { existingObjects, unbundle, updateRefs, type RefUpdate } from '../git/repo.js';
import { readBundleHeader } from '../git/bundle.js';
import { checkoutTracking, fetchRemote, initWorktree, setRemote } from '../git/worktree.js';
import { parseRepoIndex, type RepoIndex } from '../manifest/repo-index.js';
import { repoPathProblem } from '../git/refname.js';
import { downloadFile, type DownloadProgress } from '../transfer/download.js';
import { fetchDocument } from '../transfer/document.js';
import { idsToCheck, planBundles } from '../replica/plan/bundle-plan.js';
import { bundleUrl, indexUrl } from '../manifest/tree.js';

export interface CloneTarget {
  indexUrl: string;
  repo: string;
  /** Where git fetch brings the rest; '' for nowhere (a file: tree without --git-url). */
  gitUrl: string;
  /** A file: tree's root: everything the clone reads must lie under it. */
  treeRoot?: string | undefined;
}

/** Accepts a repository page, its index.json, its bundle-list, or its /git/ URL on a `serve` origin. */
export function resolveCloneUrl(input: string, gitUrl?: string): CloneTarget {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new BundlemirrorError('E_USAGE', `${JSON.stringify(input)} is not a URL`, {
      hint: 'pass the repository URL shown on the origin page, e.g. http://host:8080/pub/project.git',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new BundlemirrorError(
      'E_USAGE',
      `only http(s) and file: URLs can be cloned with bundles, not ${url.protocol}`,
    );
  let path = decodeURIComponent(url.pathname).replace(/\/+$/, '');
  path = path.replace(/\/(index\.json|bundle-list)$/, '');
  if (path.startsWith('/git/')) path = path.slice(4);
  const problem = repoPathProblem(path);
  if (problem) throw new BundlemirrorError('E_USAGE', `repository path ${JSON.stringify(path)} ${problem}`);
  return { indexUrl: indexUrl(url.origin, path), repo: path, gitUrl: gitUrl ?? `${url.origin}/git${path}` };
}

export interface CloneOptions {
  /** How long downloads keep retrying a failing server (default: the transfer default, 5 minutes). */
  retryForMs?: number | undefined;
  onWait?: ((w: RetryWait) => void) | undefined;
  onProgress?: (file: string, p: DownloadProgress) => void;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface CloneReport {
  dir: string;
  branch: string;
  bundles: number;
  bytesDownloaded: number;
  bytesResumed: number;
  fetched: boolean;
}

const MARKER = 'bundlemirror-clone.json';

export async function cloneRepo(target: CloneTarget, dir: string, opts: CloneOptions = {}): Promise<CloneReport> {
  const log = opts.log ?? (() => {});
  const gitDir = join(dir, '.git');
  const work = join(gitDir, 'bundlemirror');
  const retry = { retryForMs: opts.retryForMs, onWait: opts.onWait };
  const redirects = target.treeRoot !== undefined ? { roots: [target.treeRoot], repo: target.repo } : undefined;
  const doc = await fetchDocument(target.indexUrl, {
    maxBytes: 64 << 20,
    signal: opts.signal,
    redirects,
    ...retry,
  }).catch((err: unknown) => {
    if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND') {
      throw new BundlemirrorError('E_NOT_FOUND', `no repository index at ${target.indexUrl} (404)`, {
        repo: target.repo,
        hint: 'check the URL: it is the repository as the origin page shows it, e.g. http://host:8080/pub/project.git',
        cause: err,
      });
    }
    throw err;
  });
  if (doc.status !== 'ok')
    throw new BundlemirrorError('E_INDEX', `no index at ${target.indexUrl}`, { repo: target.repo });
  const index = parseRepoIndex(doc.body, target.repo);
  const branch = index.head?.startsWith('ref: refs/heads/') ? index.head.slice('ref: refs/heads/'.length) : 'main';

  await prepareDir(dir, target);
  await mkdir(work, { recursive: true });
  await writeFileAtomic(join(work, MARKER), JSON.stringify({ url: target.indexUrl }) + '\n');

  const present = await existingObjects(gitDir, idsToCheck(index), target.repo);
  const choice = planBundles({ index, present, exists: false });
  log(`${target.repo}: ${choice.reason}`);
  const report: CloneReport = { dir, branch, bundles: 0, bytesDownloaded: 0, bytesResumed: 0, fetched: false };
  if (choice.kind === 'bundles') {
    for (const b of choice.bundles) {
      const file = join(work, `${b.sha256}.bundle`);
      const got = await downloadFile({
        url: bundleUrl(target.indexUrl, b, target.repo, target.treeRoot),
        redirects,
        dest: file,
        expectedSize: b.size,
        sha256: b.sha256,
        partialDir: join(work, 'partial'),
        signal: opts.signal,
        ...retry,
        resumeHint: 'rerun the same clone command to resume from there',
        onProgress: opts.onProgress ? (p) => opts.onProgress!(b.uri, p) : undefined,
      });
      report.bundles += 1;
      report.bytesDownloaded += got.bytesDownloaded;
      report.bytesResumed += got.bytesResumed;
    }
    for (const b of choice.bundles) {
      const file = join(work, `${b.sha256}.bundle`);
      const header = await readBundleHeader(file);
      const have = await existingObjects(gitDir, header.prerequisites, target.repo);
      if (header.prerequisites.some((p) => !have.has(p))) {
        throw new BundlemirrorError('E_PREREQUISITES', `bundle ${b.uri} needs commits the clone lacks`, {
          repo: target.repo,
          hint: 'rerun the same command',
        });
      }
      await unbundle(gitDir, file, target.repo, { signal: opts.signal });
    }
  }
  await updateRefs(gitDir, await trackingRefs(gitDir, index, target.repo), target.repo);
  await setRemote(dir, 'origin', target.gitUrl);
  if (target.gitUrl === '') {
    if (choice.kind !== 'bundles')
      throw new BundlemirrorError('E_INDEX', `${target.indexUrl} lists no bundles to clone from`, {
        repo: target.repo,
        hint: "pass --git-url with the origin's git URL to fetch it instead",
      });
    log(`no --git-url: the clone holds what the bundles had; add one with git remote set-url origin URL`);
  } else {
    try {
      await fetchRemote(dir, 'origin');
      report.fetched = true;
    } catch (err) {
      if (choice.kind !== 'bundles') throw err;
      log(
        `warning: git fetch from ${target.gitUrl} failed (${(err as Error).message}); the clone holds what the bundles had`,
      );
    }
  }
  await checkoutTracking(dir, 'origin', branch);
  await rm(work, { recursive: true, force: true });
  return report;
}

/** Branches become origin's remote-tracking refs, everything else keeps its name. */
async function trackingRefs(gitDir: string, index: RepoIndex, repo: string): Promise<RefUpdate[]> {
  const have = await existingObjects(gitDir, Object.values(index.refs), repo);
  const updates: RefUpdate[] = [];
  for (const [name, oid] of Object.entries(index.refs)) {
    if (!have.has(oid)) continue;
    if (name.startsWith('refs/heads/'))
      updates.push({ name: `refs/remotes/origin/${name.slice('refs/heads/'.length)}`, oid });
    else if (name.startsWith('refs/tags/') || name.startsWith('refs/notes/')) updates.push({ name, oid });
  }
  return updates;
}

/** DIR must be new, empty, or a clone this command started earlier. */
async function prepareDir(dir: string, target: CloneTarget): Promise<void> {
  const entries = await readdir(dir).catch(() => null);
  if (entries === null || entries.length === 0) {
    await mkdir(dir, { recursive: true });
    await initWorktree(dir, 'main');
    return;
  }
  const marker = await readFile(join(dir, '.git', 'bundlemirror', MARKER), 'utf8').catch(() => null);
  if (marker && (JSON.parse(marker) as { url?: string }).url === target.indexUrl) return; // resuming
  const isDir = await stat(dir)
    .then((s) => s.isDirectory())
    .catch(() => false);
  throw new BundlemirrorError(
    'E_USAGE',
    `${dir} ${isDir ? 'is not empty' : 'exists'} and is not an unfinished clone of ${target.repo}`,
    {
      hint: 'choose a new directory, or rerun with the same URL to continue an interrupted clone',
    },
  );
}
