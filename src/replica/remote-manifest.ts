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
import { FileTreeNotFound } from '../transfer/failure.js';
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
  }).catch((err: unknown) => {
    throw missingManifest(config, err);
  });
  if (doc.status !== 'ok')
    throw new BundlemirrorError('E_HTTP', `GET ${url}: unexpected 304 to an unconditional request`);
  return { manifest: parseManifest(doc.body, url).manifest, source: 'fetched', location: url, savedAt: null };
}

/**
 * A 404 for the remote manifest, said as what it means: which URL, that the
 * origin has not published there (or the URL is wrong), and what to do; for
 * a `file:` manifest, the published tree's own reason (not mounted, no such
 * file, not a regular file). Any other error is returned as it is. The code
 * stays E_NOT_FOUND.
 */
export function missingManifest(config: Pick<PullConfig, 'remote' | 'file'>, err: unknown): unknown {
  if (!(err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND')) return err;
  const url = config.remote.manifest;
  const key = `[remote] manifest in ${config.file}`;
  let message: string;
  let hint: string;
  if (err instanceof FileTreeNotFound) {
    message = `no manifest at ${url}: ${err.reason}`;
    if (err.why === 'no-tree')
      hint = `check that the filesystem holding ${err.tree} is mounted on this machine, and that ${key} names the manifest.js.gz in it; then pull again`;
    else if (err.why === 'not-a-file')
      hint = `check that ${key} names the origin's manifest.js.gz; if it does, report it to whoever publishes ${err.tree}`;
    else {
      message += `: the origin has not published into ${err.tree}, or the URL is wrong`;
      hint = `check that ${key} names the manifest.js.gz of the origin's published tree, and that the mount shows the origin's latest publish (a network filesystem's cache can lag); then pull again`;
    }
  } else {
    message = `no manifest at ${url}: the server has no such file: the origin has not published its tree there, or the URL is wrong`;
    hint = `check ${key}: the URL of the manifest.js.gz at the top of the tree the origin publishes; if it is right, pull again once the origin has published`;
  }
  return new BundlemirrorError('E_NOT_FOUND', message, { hint, cause: err });
}

/**
 * The manifest may be redirected within the origin's own host, or to a place `[bundlemirror] redirects` lists.
 * A `file:` manifest has no host: it is read in its own directory, the published tree.
 */
export function manifestRedirects(config: Pick<PullConfig, 'remote' | 'bundlemirror'>): RedirectRule {
  const own = new URL(config.remote.manifest.startsWith('file:') ? '.' : '/', config.remote.manifest).href;
  return { roots: [own, ...config.bundlemirror.redirects] };
}
