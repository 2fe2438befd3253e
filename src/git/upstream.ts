/**
 * git against upstreams nobody vetted: the on-demand service clones and
 * fetches whatever URL a stranger asked for (after the URL policy admitted
 * it). Each process gets only the one transport the URL names (both
 * `protocol.allow` and GIT_ALLOW_PROTOCOL, so neither ext:: nor file:// nor
 * a submodule can sneak in), no redirects (the service checks them itself,
 * then hands git the final URL), host names pinned to the addresses that
 * were checked (http and https), no credential helpers, no hooks, no
 * templates, a minimum speed and a deadline.
 */
import { BundlemirrorError } from '../errors.js';
import { git, type GitResult } from './exec.js';

export type UpstreamScheme = 'https' | 'http' | 'git';

export interface UpstreamProgress {
  /** git's phase: `Counting objects`, `Receiving objects`, `Resolving deltas`, ... */
  phase: string;
  percent: number | null;
  done: number | null;
  total: number | null;
  /** Bytes received so far, when git reports them (Receiving objects). */
  bytes: number | null;
}

export interface UpstreamGitOptions {
  scheme: UpstreamScheme;
  /** Pin the host to these checked addresses (curl's resolve list; http and https only). */
  pin?: { host: string; port: number; addresses: string[] } | undefined;
  /** Whole-process deadline. */
  timeoutMs: number;
  /** An http transfer slower than this many bytes/s for lowSpeedSeconds is aborted. */
  lowSpeedBytes?: number | undefined;
  lowSpeedSeconds?: number | undefined;
  onProgress?: ((p: UpstreamProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
  repo?: string | undefined;
}

function restrictions(opts: UpstreamGitOptions): { config: string[]; env: Record<string, string> } {
  const c: string[] = [
    'protocol.allow=never',
    `protocol.${opts.scheme}.allow=always`,
    'http.followRedirects=false',
    `http.lowSpeedLimit=${opts.lowSpeedBytes ?? 1024}`,
    `http.lowSpeedTime=${opts.lowSpeedSeconds ?? 120}`,
    'credential.helper=',
    'core.hooksPath=/dev/null',
    'core.askPass=true',
    'transfer.unpackLimit=1',
    'fetch.recurseSubmodules=false',
  ];
  // an address literal needs no pinning (and curl's resolve list has no room for its colons)
  if (opts.pin && opts.scheme !== 'git' && !opts.pin.host.includes(':')) {
    const addrs = opts.pin.addresses.map((a) => (a.includes(':') ? `[${a}]` : a)).join(',');
    c.push(`http.curloptResolve=${opts.pin.host}:${opts.pin.port}:${addrs}`);
  }
  return {
    config: c.flatMap((kv) => ['-c', kv]),
    // GIT_ALLOW_PROTOCOL wins over any protocol.* configuration git might still read
    env: { GIT_ALLOW_PROTOCOL: opts.scheme, GIT_PROTOCOL_FROM_USER: '0' },
  };
}

const UNITS: Record<string, number> = { bytes: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
const PROGRESS =
  /^(?:remote: )?([A-Za-z][A-Za-z ]{2,40}):\s+(?:(\d{1,3})% \((\d+)\/(\d+)\)|(\d+))(?:, ([\d.]+) (bytes|KiB|MiB|GiB))?/;

/** The last progress report in a chunk of git's stderr (lines end in \r while they update). */
export function parseGitProgress(chunk: string): UpstreamProgress | null {
  const lines = chunk.split(/[\r\n]+/).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = PROGRESS.exec(lines[i]!);
    if (!m) continue;
    const bytes = m[6] !== undefined ? Math.round(Number(m[6]) * UNITS[m[7]!]!) : null;
    if (m[2] !== undefined)
      return { phase: m[1]!, percent: Number(m[2]), done: Number(m[3]), total: Number(m[4]), bytes };
    return { phase: m[1]!, percent: null, done: Number(m[5]), total: null, bytes };
  }
  return null;
}

async function runUpstream(args: string[], opts: UpstreamGitOptions, gitDir?: string): Promise<GitResult> {
  const { config, env } = restrictions(opts);
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  try {
    return await git([...config, ...args], {
      gitDir,
      env,
      repo: opts.repo,
      signal,
      onStderr: opts.onProgress
        ? (c) => {
            const p = parseGitProgress(c);
            if (p) opts.onProgress!(p);
          }
        : undefined,
    });
  } catch (err) {
    if (deadline.aborted && !opts.signal?.aborted) {
      throw new BundlemirrorError(
        'E_UPSTREAM',
        `git ${args[0]} took longer than ${Math.round(opts.timeoutMs / 1000)} s`,
        { repo: opts.repo, cause: err },
      );
    }
    throw err;
  }
}

function checkUrl(url: string, repo?: string): void {
  if (url.startsWith('-') || !/^(https?|git):\/\//.test(url)) {
    throw new BundlemirrorError('E_UNSAFE_NAME', `upstream URL ${JSON.stringify(url)} is not an http(s) or git URL`, {
      repo,
    });
  }
}

/** A bare clone (branches and tags, nothing else) of `url` into the new directory `dest`. */
export async function cloneUpstream(url: string, dest: string, opts: UpstreamGitOptions): Promise<void> {
  checkUrl(url, opts.repo);
  await runUpstream(
    ['clone', '--bare', '--progress', '--template=', '--no-local', '--end-of-options', url, dest],
    opts,
  );
}

/** Brings an existing mirror up to date: branches and tags, deleted ones pruned, all refs moved at once. */
export async function fetchUpstream(gitDir: string, url: string, opts: UpstreamGitOptions): Promise<void> {
  checkUrl(url, opts.repo);
  await runUpstream(
    [
      'fetch',
      '--progress',
      '--prune',
      '--atomic',
      '--no-write-fetch-head',
      '--end-of-options',
      url,
      '+refs/heads/*:refs/heads/*',
      '+refs/tags/*:refs/tags/*',
    ],
    opts,
    gitDir,
  );
}
