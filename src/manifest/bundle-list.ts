/**
 * git's bundle-uri list (git-config syntax) for stock `git clone
 * --bundle-uri`. git 2.39 takes absolute URIs only, so a list written
 * without a base URL is rewritten with the request's host by `serve`.
 */
import type { BundleRef } from './repo-index.js';

export function renderBundleList(bundles: BundleRef[], baseUrl: string | null): string {
  const lines = ['[bundle]', '\tversion = 1', '\tmode = all', '\theuristic = creationToken', ''];
  const live = bundles.filter((b) => !b.superseded).sort((a, b) => a.creationToken - b.creationToken);
  for (const b of live) {
    const id = b.sha256.slice(0, 16);
    const uri = baseUrl && !/^https?:/.test(b.uri) ? new URL(b.uri, baseUrl).toString() : b.uri;
    lines.push(`[bundle "${id}"]`, `\turi = ${uri}`, `\tcreationToken = ${b.creationToken}`, '');
  }
  return lines.join('\n');
}

/** Makes every relative `uri =` line absolute against `base` (the list's own URL). */
export function absolutizeBundleList(text: string, base: string): string {
  return text.replace(/^(\s*uri\s*=\s*)(\S+)\s*$/gm, (_m, prefix: string, uri: string) =>
    /^[a-z][a-z0-9+.-]*:/i.test(uri) ? `${prefix}${uri}` : `${prefix}${new URL(uri, base).toString()}`,
  );
}
