/**
 * The published tree (manifest, per-repository index.json, bundle-list and
 * bundles) as static files.
 *
 * Not express.static: it sends weak ETags, which If-Range can never match,
 * and follows symlinks out of its root. Each file is opened once and its
 * validators come from that open file, so a publish that renames a new
 * index.json into place mid-request cannot pair the old ETag with new bytes.
 * Content-addressed files stay open between requests (open-files.ts says
 * why that is safe); everything else is opened afresh for each request.
 */
import { readFile, type BigIntStats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { absolutizeBundleList } from '../manifest/bundle-list.js';
import { BUNDLE_LIST_FILE, INDEX_FILE } from '../manifest/repo-index.js';
import { statEtag } from './conditional.js';
import { CACHE_IMMUTABLE, CACHE_REVALIDATE, sendEntity, type Entity } from './send.js';
import { requestOrigin } from './base-url.js';
import { printable } from './access-log.js';
import { methodNotAllowed, sendText } from './reply.js';
import { resolveInside, splitTarget, splitUrlPath } from './safe-path.js';
import { bundleEtag, MANIFEST_FILE } from '../manifest/tree.js';
import { oneShot, openRegular, type OpenFile, type OpenFileCache } from './open-files.js';

/** Content-addressed bundle, or LFS object (`lfs/objects/ab/cd/<oid>`): the name is the sha256 of the bytes. */
const CONTENT_ADDRESSED = /^([0-9a-f]{64})(?:\.bundle)?$/;

/** A bundle list larger than this is sent as it is, without rewriting. */
const MAX_BUNDLE_LIST = 4 << 20;

interface FileKind {
  contentType: string;
  cacheControl: string;
  /** A strong ETag known from the name alone: the bytes never change, so the open file may be kept. */
  etag?: string;
  rewriteBundleList?: boolean;
}

export function classify(name: string): FileKind {
  const ca = CONTENT_ADDRESSED.exec(name);
  if (ca) return { contentType: 'application/octet-stream', cacheControl: CACHE_IMMUTABLE, etag: bundleEtag(ca[1]!) };
  // application/gzip and no Content-Encoding: clients must store the .gz as it is, not inflate it
  if (name === MANIFEST_FILE) return { contentType: 'application/gzip', cacheControl: CACHE_REVALIDATE };
  if (name === INDEX_FILE) return { contentType: 'application/json', cacheControl: CACHE_REVALIDATE };
  if (name === BUNDLE_LIST_FILE)
    return { contentType: 'text/plain; charset=utf-8', cacheControl: CACHE_REVALIDATE, rewriteBundleList: true };
  return { contentType: 'application/octet-stream', cacheControl: CACHE_REVALIDATE };
}

function bufferEntity(body: Buffer, st: BigIntStats, kind: FileKind): Entity {
  return {
    size: body.length,
    // the rewritten bytes depend on the Host, so the tag is derived from them, not from the file
    etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 40)}"`,
    lastModified: new Date(Number(st.mtimeMs)),
    contentType: kind.contentType,
    cacheControl: kind.cacheControl,
    body: { bytes: body },
  };
}

function readWhole(file: OpenFile): Promise<Buffer> {
  return new Promise((resolve, reject) => readFile(file.fd, (err, data) => (err ? reject(err) : resolve(data))));
}

/**
 * `urlPrefix`: where the tree is mounted (`/on-demand` for the on-demand cache), for the absolute URLs in bundle lists.
 * `openFiles`: keeps content-addressed files open between requests (see open-files.ts).
 * `log`: the server's log, for a body this server could not send whole.
 */
export function publishedTreeHandler(
  realRoot: string,
  openFiles: OpenFileCache,
  log: (line: string) => void,
  urlPrefix = '',
) {
  /** The file at `segments`, proved inside the root and regular, or null for 404. */
  async function openServable(segments: string[], keep: boolean): Promise<OpenFile | null> {
    const requested = join(realRoot, ...segments);
    const kept = keep ? await openFiles.reuse(requested) : null;
    if (kept !== null) return kept;
    const real = await resolveInside(realRoot, segments);
    const opened = real === null ? null : await openRegular(real);
    if (opened === null) return null;
    return keep ? openFiles.keep(requested, opened.fd, opened.st) : oneShot(opened.fd, opened.st);
  }

  return async function servePublished(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, ['GET', 'HEAD']);
    const { path } = splitTarget(target);
    const check = splitUrlPath(path);
    if (!check.ok)
      return sendText(req, res, check.status, check.status === 400 ? `bad request: ${check.reason}` : 'not found');
    const name = check.segments[check.segments.length - 1];
    if (name === undefined) return sendText(req, res, 404, 'not found');
    const kind = classify(name);
    const file = await openServable(check.segments, kind.etag !== undefined);
    if (file === null) return sendText(req, res, 404, 'not found');

    const { st } = file;
    try {
      if (kind.rewriteBundleList && st.size <= BigInt(MAX_BUNDLE_LIST)) {
        const text = (await readWhole(file)).toString('utf8');
        // git 2.39 takes only absolute bundle URIs: resolve relative ones against this list's own URL
        let out = text;
        try {
          out = absolutizeBundleList(text, `${requestOrigin(req)}${urlPrefix}${path}`);
        } catch {
          /* a URI that cannot be resolved: send the list as published */
        }
        return await sendEntity(req, res, bufferEntity(Buffer.from(out, 'utf8'), st, kind));
      }
      await sendEntity(
        req,
        res,
        {
          size: Number(st.size),
          etag: kind.etag ?? statEtag(st),
          lastModified: new Date(Number(st.mtimeMs)),
          contentType: kind.contentType,
          cacheControl: kind.cacheControl,
          body: { fd: file.fd },
        },
        { log, what: printable(`${urlPrefix}${path}`) },
      );
    } finally {
      file.release();
    }
  };
}
