/**
 * Where `export` reads a published tree from: a directory on disk (the
 * origin's `publish --out`), or the remote a replica config points at
 * (manifest, index.json and bundles over HTTP; bundles downloaded
 * resumably and verified into `<toplevel>/.bundlemirror/export/`).
 */
import { readFile, realpath, rm } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BundlemirrorError } from '../errors.js';
import {
  INDEX_FILE,
  parseRepoIndex,
  type BundleRef,
  type LfsObjectRef,
  type RepoIndex,
} from '../manifest/repo-index.js';
import { lfsObjectRelPath } from '../lfs/oid.js';
import { lfsPartialDir } from '../replica/sync/lfs-objects.js';
import { fetchDocument } from '../transfer/document.js';
import { downloadFile, type DownloadProgress } from '../transfer/download.js';
import { checkToplevel, type PullConfig } from '../replica/config/config.js';
import { guardReplica } from '../replica/own-paths.js';
import { manifestRedirects } from '../replica/remote-manifest.js';
import { partialDir, stateDir } from '../replica/paths.js';
import { bundleUrl, diskPathOf, indexUrl } from '../manifest/tree.js';
import { KIT_MANIFEST as MANIFEST_FILE, MAX_KIT_DOCUMENT } from './kit-format.js';

export interface KitSource {
  /** For kit.json and messages. */
  readonly location: string;
  manifest(): Promise<Buffer>;
  /** The repository's index.json, or null when the tree has none for it. */
  index(repo: string): Promise<RepoIndex | null>;
  /** A local file with the bundle's bytes (the caller still hashes them). */
  bundleFile(repo: string, bundle: BundleRef): Promise<string>;
  /** A local file with an LFS object's bytes (the caller still hashes them). */
  lfsObjectFile(repo: string, object: LfsObjectRef): Promise<string>;
  /** Called once at the end; `ok` false when the export failed (keep what can be resumed). */
  close(ok: boolean): Promise<void>;
}

/** A published tree on disk. */
export async function directorySource(dir: string): Promise<KitSource> {
  let root: string;
  try {
    root = await realpath(dir);
  } catch (err) {
    throw new BundlemirrorError('E_USAGE', `--bundles ${dir} does not exist`, {
      hint: 'point --bundles at the output of publish',
      cause: err,
    });
  }
  const repoDir = (repo: string) => diskPathOf(root, repo);
  return {
    location: root,
    manifest: () =>
      readFile(join(root, MANIFEST_FILE)).catch((err: Error) => {
        throw new BundlemirrorError('E_MANIFEST', `cannot read ${join(root, MANIFEST_FILE)}: ${err.message}`, {
          hint: 'point --bundles at the output of publish',
        });
      }),
    async index(repo) {
      let text: Buffer;
      try {
        text = await readFile(join(repoDir(repo), INDEX_FILE));
      } catch {
        return null;
      }
      return parseRepoIndex(text, repo);
    },
    async bundleFile(repo, bundle) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(bundle.uri)) {
        throw new BundlemirrorError('E_INDEX', `bundle ${bundle.uri} is hosted elsewhere, not in ${root}`, {
          repo,
          hint: 'export with -c CONFIG, which downloads bundles from where the index says',
        });
      }
      const file = fileURLToPath(new URL(bundle.uri, pathToFileURL(repoDir(repo) + '/')));
      const real = await realpath(file).catch(() => null);
      if (!real || !real.startsWith(root + sep)) {
        throw new BundlemirrorError('E_INDEX', `bundle ${bundle.uri} is missing from ${root} or lies outside it`, {
          repo,
          hint: 'publish again; a bundle listed in an index must be in the tree',
        });
      }
      return real;
    },
    async lfsObjectFile(repo, object) {
      const file = join(repoDir(repo), ...lfsObjectRelPath(object.oid).split('/'));
      const real = await realpath(file).catch(() => null);
      if (!real || !real.startsWith(root + sep)) {
        throw new BundlemirrorError('E_INDEX', `LFS object ${object.oid} is missing from ${root} or lies outside it`, {
          repo,
          hint: 'publish again; an LFS object listed in an index must be in the tree',
        });
      }
      return real;
    },
    close: async () => {},
  };
}

/** The remote of a replica config, over HTTP (or file: URLs). */
export async function remoteSource(
  config: PullConfig,
  opts: { signal?: AbortSignal; onProgress?: (file: string, p: DownloadProgress) => void } = {},
): Promise<KitSource> {
  const base = config.bundlemirror.bundles;
  if (base.startsWith('file:')) {
    const dir = directorySource(fileURLToPath(base));
    return { ...(await dir), location: config.remote.manifest };
  }
  await checkToplevel(config);
  await guardReplica(config);
  const toplevel = config.core.toplevel;
  const cache = join(stateDir(toplevel), 'export');
  const downloaded = new Set<string>();
  return {
    location: config.remote.manifest,
    async manifest() {
      const url = config.remote.manifest;
      if (url.startsWith('file:')) return readFile(new URL(url));
      const doc = await fetchDocument(url, {
        maxBytes: MAX_KIT_DOCUMENT,
        signal: opts.signal,
        redirects: manifestRedirects(config),
      });
      if (doc.status !== 'ok')
        throw new BundlemirrorError('E_HTTP', `GET ${url}: unexpected 304 to an unconditional request`);
      return doc.body;
    },
    async index(repo) {
      try {
        const doc = await fetchDocument(indexUrl(base, repo), {
          maxBytes: MAX_KIT_DOCUMENT,
          signal: opts.signal,
          redirects: { roots: [base, ...config.bundlemirror.redirects], repo },
        });
        return doc.status === 'ok' ? parseRepoIndex(doc.body, repo) : null;
      } catch (err) {
        if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND') return null;
        throw err;
      }
    },
    async bundleFile(repo, bundle) {
      const dest = join(cache, `${bundle.sha256}.bundle`);
      await downloadFile({
        url: bundleUrl(indexUrl(base, repo), bundle, repo, base),
        redirects: { roots: [base, ...config.bundlemirror.redirects], repo },
        dest,
        expectedSize: bundle.size,
        sha256: bundle.sha256,
        partialDir: partialDir(toplevel),
        signal: opts.signal,
        onProgress: opts.onProgress ? (p) => opts.onProgress!(bundle.uri, p) : undefined,
      });
      downloaded.add(dest);
      return dest;
    },
    async lfsObjectFile(repo, object) {
      const dest = join(cache, `${object.oid}.lfs`);
      const index = indexUrl(base, repo);
      await downloadFile({
        url: new URL(lfsObjectRelPath(object.oid), index).toString(),
        redirects: { roots: [base, ...config.bundlemirror.redirects], repo },
        dest,
        expectedSize: object.size,
        sha256: object.oid,
        partialDir: lfsPartialDir(toplevel),
        signal: opts.signal,
        onProgress: opts.onProgress ? (p) => opts.onProgress!(lfsObjectRelPath(object.oid), p) : undefined,
      });
      downloaded.add(dest);
      return dest;
    },
    async close(ok) {
      // after a failure the verified bundles stay, so the next export does not download them again
      if (ok) await Promise.all([...downloaded].map((f) => rm(f, { force: true })));
    },
  };
}
