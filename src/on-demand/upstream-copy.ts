/**
 * Copying one repository from its upstream into the cache: where an http(s)
 * URL really leads after the redirects the rules allow, then a git clone (into
 * a temporary directory, moved into place when complete) or a git fetch of a
 * mirror the cache already holds. The copy's size is watched while git runs:
 * past the limit git is stopped and nothing is left behind.
 */
import { mkdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BundlemirrorError, isBundlemirrorError } from '../errors.js';
import { cloneUpstream, fetchUpstream, type UpstreamProgress } from '../git/upstream.js';
import { resolveSmartHttp } from '../transfer/upstream-probe.js';
import { diskUsage, removeTree } from './cache.js';
import type { AdmittedUrl, UrlPolicy } from './url-policy.js';

const SIZE_POLL_MS = 250;

/** Where git connects: the admitted URL, or for http(s) where its redirects lead. */
export interface UpstreamTarget {
  url: string;
  host: string;
  port: number;
  addresses: string[];
  scheme: AdmittedUrl['scheme'];
}

/** One copy: which repository, and where its progress goes. */
export interface CopyJob {
  path: string;
  url: string;
  onProgress(p: UpstreamProgress): void;
}

export interface CopyLimits {
  maxRepoBytes: number;
  gitTimeoutMs: number;
  /** The service is shutting down. */
  shutdown: AbortSignal;
}

/** For http(s), where the repository really is after the redirects the rules allow. */
export async function upstreamTarget(a: AdmittedUrl, policy: UrlPolicy): Promise<UpstreamTarget> {
  if (a.scheme === 'git') return a;
  const final = await resolveSmartHttp(
    { url: a.url, host: a.host, addresses: a.addresses },
    {
      admit: async (url) => {
        const next = await policy.admit(url);
        if (next.scheme === 'git')
          throw new BundlemirrorError('E_URL_SCHEME', 'a redirect cannot change the transport');
        return { url: next.url, host: next.host, addresses: next.addresses, port: next.port, scheme: next.scheme };
      },
    },
  );
  const u = new URL(final.url);
  const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return {
    url: final.url,
    host: final.host,
    port,
    addresses: final.addresses,
    scheme: u.protocol === 'https:' ? 'https' : 'http',
  };
}

/** A new mirror: cloned in `tmpDir`, then renamed to `mirror`. */
export async function cloneCopy(
  job: CopyJob,
  mirror: string,
  tmpDir: string,
  target: UpstreamTarget,
  limits: CopyLimits,
): Promise<void> {
  const tmp = join(tmpDir, `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.git`);
  try {
    await watched(job, tmp, limits, (signal) =>
      cloneUpstream(target.url, tmp, gitOptions(job, target, limits, signal)),
    );
    await removeTree(mirror); // debris of a mirror evicted from the state but not from the disk
    await mkdir(dirname(mirror), { recursive: true });
    await rename(tmp, mirror);
  } finally {
    await removeTree(tmp);
  }
}

/** A mirror the cache holds, brought up to date. */
export async function fetchCopy(
  job: CopyJob,
  mirror: string,
  target: UpstreamTarget,
  limits: CopyLimits,
): Promise<void> {
  await watched(job, mirror, limits, (signal) =>
    fetchUpstream(mirror, target.url, gitOptions(job, target, limits, signal)),
  );
}

function gitOptions(job: CopyJob, target: UpstreamTarget, limits: CopyLimits, signal: AbortSignal) {
  return {
    scheme: target.scheme,
    pin: { host: target.host, port: target.port, addresses: target.addresses },
    timeoutMs: limits.gitTimeoutMs,
    repo: job.path,
    signal,
    onProgress: (p: UpstreamProgress) => job.onProgress(p),
  };
}

/** Runs git while watching the size of `dir`; past the limit git is stopped and E_REPO_TOO_LARGE thrown. */
async function watched(
  job: CopyJob,
  dir: string,
  limits: CopyLimits,
  work: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const stop = new AbortController();
  const tooLarge = () =>
    new BundlemirrorError(
      'E_REPO_TOO_LARGE',
      `${job.url} is larger than this service's limit of ${limits.maxRepoBytes} bytes`,
      {
        repo: job.path,
        hint: 'clone it directly, or ask the operator to raise --on-demand-max-repo-size',
      },
    );
  let checking = false;
  const timer = setInterval(async () => {
    if (checking) return;
    checking = true;
    if ((await diskUsage(dir)) > limits.maxRepoBytes) stop.abort(tooLarge());
    checking = false;
  }, SIZE_POLL_MS);
  try {
    await work(AbortSignal.any([stop.signal, limits.shutdown]));
  } catch (err) {
    if (stop.signal.aborted) throw stop.signal.reason;
    if (limits.shutdown.aborted) throw limits.shutdown.reason;
    // git talking to the upstream failed: unreachable, not a repository, private, cut off
    if (isBundlemirrorError(err) && err.code === 'E_GIT') {
      throw new BundlemirrorError('E_UPSTREAM', err.message, {
        repo: job.path,
        hint: 'check that the URL is a public git repository, or try again later',
        cause: err,
      });
    }
    throw err;
  } finally {
    clearInterval(timer);
  }
  if ((await diskUsage(dir)) > limits.maxRepoBytes) throw tooLarge();
}
