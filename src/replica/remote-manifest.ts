/**
 * The remote manifest as this replica last saw it, read without touching
 * the network: `pull` keeps a copy of every manifest it downloads in
 * `<toplevel>/.bundlemirror/remote-manifest.js.gz`; a `file:` manifest is
 * read where it is. `status` compares against it and `fsck` repairs from it.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { parseManifest, type Manifest } from '../manifest/manifest.js';
import type { RedirectRule } from '../transfer/http.js';
import { fetchDocument } from '../transfer/document.js';
import type { PullConfig } from './config/config.js';
import { stateDir } from './paths.js';

/** Written by manifest-poll.ts (`fetchRemoteManifest`) at remoteManifestCopyPath(). */
export const REMOTE_MANIFEST_COPY = 'remote-manifest.js.gz';

export function remoteManifestCopyPath(toplevel: string): string {
  return join(stateDir(toplevel), REMOTE_MANIFEST_COPY);
}

export interface KnownRemoteManifest {
  manifest: Manifest;
  /** `cached`: pull's copy; `file`: a file: URL read in place; `fetched`: downloaded just now. */
  source: 'cached' | 'file' | 'fetched';
  /** Where the bytes came from (a path or URL). */
  location: string;
  /** mtime of the cached copy (when pull last downloaded a changed manifest); null when fetched. */
  savedAt: string | null;
}

/** The last remote manifest pull saw, or null when pull never fetched one. */
export async function readKnownRemoteManifest(config: PullConfig): Promise<KnownRemoteManifest | null> {
  const url = config.remote.manifest;
  if (url.startsWith('file:')) {
    const file = new URL(url);
    const bytes = await readFile(file).catch(() => null);
    if (!bytes) return null;
    const st = await stat(file);
    return {
      manifest: parseManifest(bytes, url).manifest,
      source: 'file',
      location: url,
      savedAt: st.mtime.toISOString(),
    };
  }
  const copy = remoteManifestCopyPath(config.core.toplevel);
  let bytes: Buffer;
  try {
    bytes = await readFile(copy);
  } catch {
    return null;
  }
  const st = await stat(copy);
  try {
    return {
      manifest: parseManifest(bytes, copy).manifest,
      source: 'cached',
      location: copy,
      savedAt: st.mtime.toISOString(),
    };
  } catch (err) {
    throw new BundlemirrorError(
      'E_MANIFEST',
      `the cached copy of the remote manifest (${copy}) is unreadable: ${(err as Error).message}`,
      {
        hint: 'delete it; the next pull downloads the manifest again',
        cause: err,
      },
    );
  }
}

/**
 * Downloads the remote manifest now, in memory. Never stores it and never
 * touches pull's validators: a stored copy would make the next pull's
 * conditional request answer "unchanged" for work it has not done.
 */
export async function fetchRemoteManifestNow(config: PullConfig, signal?: AbortSignal): Promise<KnownRemoteManifest> {
  const url = config.remote.manifest;
  const doc = await fetchDocument(url, {
    maxBytes: 256 << 20,
    signal,
    retries: 1,
    redirects: manifestRedirects(config),
  });
  if (doc.status !== 'ok')
    throw new BundlemirrorError('E_HTTP', `GET ${url}: unexpected 304 to an unconditional request`);
  return { manifest: parseManifest(doc.body, url).manifest, source: 'fetched', location: url, savedAt: null };
}

/**
 * The manifest may be redirected within the origin's own host, or to a place `[bundlemirror] redirects` lists.
 * A `file:` manifest has no host: it is read in its own directory, the published tree.
 */
export function manifestRedirects(config: Pick<PullConfig, 'remote' | 'bundlemirror'>): RedirectRule {
  const own = new URL(config.remote.manifest.startsWith('file:') ? '.' : '/', config.remote.manifest).href;
  return { roots: [own, ...config.bundlemirror.redirects] };
}
