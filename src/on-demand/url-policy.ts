/**
 * Which upstream URLs the on-demand service may clone. The service clones
 * whatever a stranger pastes, so without these rules it is an open proxy
 * into the network it runs in (SSRF). Every refusal carries its own error
 * code, so a client (and a test) can tell which rule said no.
 *
 * Rules, in order: a URL that parses (no query, no fragment, a plain host,
 * a path the cache can hold), scheme https, http or git only, no userinfo,
 * matching an `--allow` pattern, and every address the host resolves to
 * public unless the matching pattern names that very address.
 *
 * Patterns look like URLs: `https://github.com/*`, `git://*.example.org/pub/*`,
 * `http://127.0.0.1:8080/*`. The scheme may be `*` (any of the three) or
 * left out together with `://`. In the host, `*` stands for one DNS label
 * (it never crosses a dot, so `*.example.org` cannot match `evil.com/x.example.org`);
 * a port must match exactly (`:*` for any), and a pattern without one
 * allows the scheme's default port only. In the path, `*` matches anything,
 * slashes included (fnmatch).
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { BundlemirrorError, type ErrorCode } from '../errors.js';
import { fnmatch } from '../glob/fnmatch.js';
import { repoPathProblem } from '../git/refname.js';

const SCHEMES = ['https', 'http', 'git'] as const;
export type UpstreamScheme = (typeof SCHEMES)[number];
const DEFAULT_PORT: Record<UpstreamScheme, number> = { https: 443, http: 80, git: 9418 };

export interface AllowPattern {
  text: string;
  scheme: UpstreamScheme | '*';
  /** Lowercase host glob. */
  host: string;
  /** null: the scheme's default port; '*': any. */
  port: number | '*' | null;
  path: string;
  /** The host is an IP literal: the one address this pattern lets through even when it is private. */
  address: string | null;
}

/** An upstream URL that passed the syntax rules. */
export interface UpstreamUrl {
  scheme: UpstreamScheme;
  /** Lowercase; IPv6 without brackets. */
  host: string;
  port: number;
  /** Explicit in the URL (kept in the normalized form and the cache path). */
  explicitPort: boolean;
  /** Starts with `/`, no trailing slash, percent-encoding as given. */
  path: string;
  /** `scheme://host[:port]/path`: the one spelling used as the job key and given to git. */
  url: string;
  /** Where the mirror lives in the cache toplevel: `/<host>[:port]/<path>.git` (an IPv6 host as `v6_<groups joined by _>`). */
  repoPath: string;
}

export interface AdmittedUrl extends UpstreamUrl {
  /** Addresses the host resolved to, all checked (git is pinned to them where it can be). */
  addresses: string[];
  pattern: string;
}

export type Resolver = (host: string) => Promise<string[]>;

const systemResolver: Resolver = async (host) =>
  (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

function refuse(code: ErrorCode, message: string, hint?: string): BundlemirrorError {
  return new BundlemirrorError(code, message, { hint });
}

const LABEL_GLOB = /^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?))*$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

/** Parses an `--allow` pattern; throws E_USAGE naming the pattern. */
export function parseAllowPattern(text: string): AllowPattern {
  const bad = (why: string) =>
    new BundlemirrorError('E_USAGE', `--allow ${JSON.stringify(text)}: ${why}`, {
      hint: 'patterns look like https://github.com/* or git://127.0.0.1:9418/*',
    });
  const m = /^(?:([a-z*]+):\/\/)?([^/]+)(\/.*)?$/.exec(text);
  if (!m) throw bad('expected [SCHEME://]HOST[:PORT]/PATH');
  const scheme = (m[1] ?? '*') as UpstreamScheme | '*';
  if (scheme !== '*' && !SCHEMES.includes(scheme)) throw bad(`scheme must be one of ${SCHEMES.join(', ')} or *`);
  if (/[@?#]/.test(text)) throw bad('no userinfo, query or fragment');
  const hostPort = m[2]!.toLowerCase();
  const hp = /^(\[[0-9a-f:.]+\]|[^:]+)(?::(\d{1,5}|\*))?$/.exec(hostPort);
  if (!hp) throw bad('bad host or port');
  let host = hp[1]!;
  if (host.startsWith('[')) host = host.slice(1, -1);
  const address = isIP(host) ? host : null;
  if (!address && !LABEL_GLOB.test(host)) throw bad('the host must be a name (each label may be *) or an IP address');
  const port = hp[2] === undefined ? null : hp[2] === '*' ? '*' : Number(hp[2]);
  if (typeof port === 'number' && (port < 1 || port > 65535)) throw bad('port out of range');
  return { text, scheme, host, port, path: m[3] ?? '/*', address };
}

function hostMatches(glob: string, host: string): boolean {
  if (isIP(glob)) return glob === host;
  const g = glob.split('.');
  const h = host.replace(/\.$/, '').split('.');
  return g.length === h.length && g.every((label, i) => label === '*' || label === h[i]);
}

function patternMatches(p: AllowPattern, u: UpstreamUrl): boolean {
  if (p.scheme !== '*' && p.scheme !== u.scheme) return false;
  if (!hostMatches(p.host, u.host)) return false;
  if (p.port === null ? u.port !== DEFAULT_PORT[u.scheme] : p.port !== '*' && p.port !== u.port) return false;
  return fnmatch(u.path, p.path) || fnmatch(u.path + '/', p.path);
}

/** The syntax rules: scheme, userinfo, host, path. Throws a refusal naming the rule. */
export function parseUpstreamUrl(input: string): UpstreamUrl {
  if (typeof input !== 'string' || input.length === 0 || input.length > 2048)
    throw refuse('E_URL_INVALID', 'the URL is empty or longer than 2048 characters');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(input)?.[1]?.toLowerCase();
  if (scheme === undefined)
    throw refuse('E_URL_SCHEME', `${JSON.stringify(input)} has no scheme`, 'use an https://, http:// or git:// URL');
  if (!SCHEMES.includes(scheme as UpstreamScheme) || !input.slice(scheme.length).startsWith('://')) {
    throw refuse(
      'E_URL_SCHEME',
      `the scheme ${JSON.stringify(scheme)} is not served here (file, ext, ssh and the rest are refused)`,
      'use an https://, http:// or git:// URL',
    );
  }
  if (/[\x00-\x20\x7f]/.test(input)) throw refuse('E_URL_INVALID', 'the URL contains a space or control character');
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    throw refuse('E_URL_INVALID', `${JSON.stringify(input)} is not a URL`);
  }
  if (u.username || u.password || /^[a-z]+:\/\/[^/]*@/i.test(input)) {
    throw refuse(
      'E_URL_USERINFO',
      'URLs with a user name or password are refused',
      'ask for the public URL of the repository',
    );
  }
  if (u.search || u.hash || input.includes('?') || input.includes('#'))
    throw refuse('E_URL_INVALID', 'URLs with a query or fragment are refused');
  let host = u.hostname.toLowerCase();
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (!isIP(host) && !HOSTNAME.test(host))
    throw refuse('E_URL_INVALID', `the host ${JSON.stringify(u.hostname)} is not a plain host name or address`);
  host = host.replace(/\.$/, '');
  const s = scheme as UpstreamScheme;
  const port = u.port === '' ? DEFAULT_PORT[s] : Number(u.port);
  const explicitPort = u.port !== '';
  const path = u.pathname.replace(/\/+$/, '');
  if (path === '') throw refuse('E_URL_INVALID', 'the URL names no repository path');
  const hostPart = (isIP(host) === 6 ? `[${host}]` : host) + (explicitPort ? `:${port}` : '');
  const repoPath = `/${isIP(host) === 6 ? `v6_${host.replace(/:/g, '_')}` : host}${explicitPort ? `:${port}` : ''}${path.replace(/\.git$/, '')}.git`;
  const problem = repoPathProblem(repoPath);
  if (problem || /%2f|%5c|%00/i.test(path))
    throw refuse(
      'E_URL_INVALID',
      `the path ${JSON.stringify(path)} cannot be mirrored here: ${problem ?? 'it encodes a slash or NUL'}`,
    );
  return { scheme: s, host, port, explicitPort, path, url: `${s}://${hostPart}${path}`, repoPath };
}

/** Addresses no upstream may have unless a pattern names them. */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv6');

/** IPv4 inside IPv6 (mapped, NAT64) is judged as the IPv4 address it carries. */
function embeddedV4(a: string): string | null {
  const m = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (m) return m[1]!;
  const h = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(a);
  if (!h) return null;
  const hi = parseInt(h[1]!, 16);
  const lo = parseInt(h[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

export function isPrivateAddress(address: string): boolean {
  const v4 = isIP(address) === 4 ? address : embeddedV4(address);
  if (v4) return PRIVATE.check(v4, 'ipv4');
  return isIP(address) === 6 ? PRIVATE.check(address, 'ipv6') : true;
}

export class UrlPolicy {
  readonly patterns: AllowPattern[];
  constructor(
    patterns: string[],
    private readonly resolve: Resolver = systemResolver,
  ) {
    this.patterns = patterns.map(parseAllowPattern);
  }

  /** The pattern that admits this URL, ignoring addresses; throws E_URL_NOT_ALLOWED. */
  matching(u: UpstreamUrl): AllowPattern {
    const p = this.patterns.find((pat) => patternMatches(pat, u));
    if (!p)
      throw refuse(
        'E_URL_NOT_ALLOWED',
        `${u.url} matches no --allow pattern of this service`,
        'ask the service operator to allow it',
      );
    return p;
  }

  /** Every rule, DNS included. Throws the refusal of the first rule that fails. */
  async admit(input: string): Promise<AdmittedUrl> {
    const u = parseUpstreamUrl(input);
    const pattern = this.matching(u);
    return { ...u, addresses: await this.checkAddresses(u, pattern), pattern: pattern.text };
  }

  /** Resolves the host; every address must be public, or the one the pattern names. */
  async checkAddresses(u: UpstreamUrl, pattern: AllowPattern): Promise<string[]> {
    let addresses: string[];
    if (isIP(u.host)) addresses = [u.host];
    else {
      try {
        addresses = await this.resolve(u.host);
      } catch (err) {
        throw refuse(
          'E_UPSTREAM',
          `cannot resolve ${u.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          'check the host name',
        );
      }
    }
    if (addresses.length === 0) throw refuse('E_UPSTREAM', `${u.host} resolves to no address`);
    for (const a of addresses) {
      if (isPrivateAddress(a) && pattern.address !== a) {
        throw refuse(
          'E_URL_ADDRESS',
          `${u.host} resolves to ${a}, a private, loopback or link-local address`,
          'only a pattern naming that address can allow it',
        );
      }
    }
    return addresses;
  }
}
