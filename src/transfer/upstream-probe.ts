/**
 * Where a smart-HTTP upstream really is. git follows redirects on its first
 * request (`info/refs`) by default, which would let an allowed URL send the
 * on-demand service anywhere. So we make that first request ourselves,
 * without following redirects, have each Location admitted by the caller's
 * rules (scheme, allow-list, addresses), and give git the final URL with
 * redirects switched off. Each request connects only to the addresses the
 * caller checked for that host.
 */
import type { LookupAddress } from 'node:dns';
import { BundlemirrorError } from '../errors.js';
import { USER_AGENT } from './http.js';

const SUFFIX = '/info/refs?service=git-upload-pack';
const MAX_HOPS = 5;

export interface ProbeTarget {
  /** `http(s)://host[:port]/path`, no trailing slash. */
  url: string;
  host: string;
  /** Addresses already checked for `host`. */
  addresses: string[];
}

export interface ProbeOptions {
  /** Checks a redirect target against every rule; throws its refusal. */
  admit: (url: string) => Promise<ProbeTarget>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Follows the upstream's redirects under the caller's rules; resolves with the URL git should use. */
export async function resolveSmartHttp(start: ProbeTarget, opts: ProbeOptions): Promise<ProbeTarget> {
  let target = start;
  for (let hop = 0; ; hop++) {
    const res = await probeOnce(target, opts);
    if (res.status >= 200 && res.status < 300) return target;
    if (res.status >= 300 && res.status < 400) {
      if (hop >= MAX_HOPS)
        throw new BundlemirrorError('E_URL_REDIRECT', `${start.url}: more than ${MAX_HOPS} redirects`);
      const location = res.location;
      let next: URL;
      try {
        next = new URL(location ?? '', target.url + SUFFIX);
      } catch {
        throw new BundlemirrorError('E_URL_REDIRECT', `${target.url} redirects to an unreadable location`);
      }
      const href = next.href;
      if (!href.endsWith(SUFFIX)) {
        throw new BundlemirrorError(
          'E_URL_REDIRECT',
          `${target.url} redirects to ${href}, which is not a git repository URL`,
        );
      }
      try {
        target = await opts.admit(href.slice(0, -SUFFIX.length));
      } catch (err) {
        const why = err instanceof BundlemirrorError ? `${err.message} [${err.code}]` : String(err);
        throw new BundlemirrorError('E_URL_REDIRECT', `${start.url} redirects to a URL this service refuses: ${why}`, {
          hint: 'ask for the URL the repository is really at; it must pass the same rules',
          cause: err,
        });
      }
      continue;
    }
    const hint =
      res.status === 401 || res.status === 403
        ? 'the repository is private or the URL is wrong; only public repositories can be mirrored'
        : 'check the URL';
    throw new BundlemirrorError('E_UPSTREAM', `${target.url} answered ${res.status} to a git request`, { hint });
  }
}

async function probeOnce(
  target: ProbeTarget,
  opts: ProbeOptions,
): Promise<{ status: number; location: string | undefined }> {
  const pinned = target.addresses;
  const dnsLookup = ((hostname: string, options: unknown, callback?: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (
      err: Error | null,
      address: string | LookupAddress[],
      family?: number,
    ) => void;
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
    const list = pinned.map((a) => ({ address: a, family: a.includes(':') ? 6 : 4 }));
    if (hostname !== target.host || list.length === 0) return cb(new Error(`refusing to resolve ${hostname}`), '', 0);
    if (all) cb(null, list);
    else cb(null, list[0]!.address, list[0]!.family);
  }) as never;
  try {
    // loaded here only: the service's probe is the one user of got's stream with a pinned DNS answer
    const { default: got } = await import('got');
    const stream = got.stream(target.url + SUFFIX, {
      headers: { 'user-agent': USER_AGENT, 'git-protocol': 'version=2' },
      followRedirect: false,
      throwHttpErrors: false,
      retry: { limit: 0 },
      decompress: false,
      dnsLookup,
      timeout: { request: opts.timeoutMs ?? 30_000 },
      signal: opts.signal,
    });
    stream.on('error', () => {});
    const res = await new Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined> }>(
      (resolve, reject) => {
        stream.once('error', reject);
        stream.once('response', resolve);
      },
    );
    stream.destroy();
    const loc = res.headers.location;
    return { status: res.statusCode, location: Array.isArray(loc) ? loc[0] : loc };
  } catch (err) {
    if (err instanceof BundlemirrorError) throw err;
    throw new BundlemirrorError('E_UPSTREAM', `${target.url}: ${(err as Error).message}`, {
      hint: 'the upstream is unreachable from the service; try again later',
      cause: err,
    });
  }
}
