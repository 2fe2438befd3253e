/**
 * The published tree (manifest, per-repository index.json, bundle-list and
 * bundles) as static files.
 *
 * Not express.static: it sends weak ETags, which If-Range can never match,
 * and follows symlinks out of its root. Each file is opened once and its
 * validators come from that open file, so a publish that renames a new
 * index.json into place mid-request cannot pair the old ETag with new bytes.
 */
import { constants, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { absolutizeBundleList } from '../manifest/bundle-list.js';
import { BUNDLE_LIST_FILE, INDEX_FILE } from '../manifest/repo-index.js';
import { statEtag } from './conditional.js';
import { CACHE_IMMUTABLE, CACHE_REVALIDATE, sendEntity, type Entity } from './send.js';
import { requestOrigin } from './base-url.js';
import { methodNotAllowed, sendText } from './reply.js';
import { resolveInside, splitTarget, splitUrlPath } from './safe-path.js';
import { bundleEtag, MANIFEST_FILE } from '../manifest/tree.js';

/** Content-addressed bundle, or LFS object (`lfs/objects/ab/cd/<oid>`): the name is the sha256 of the bytes. */
const CONTENT_ADDRESSED = /^([0-9a-f]{64})(?:\.bundle)?$/;

/** Read size for file bodies (see the body() comment below). */
const READ_CHUNK = 1 << 20;

/** A bundle list larger than this is sent as it is, without rewriting. */
const MAX_BUNDLE_LIST = 4 << 20;

interface FileKind {
  contentType: string;
  cacheControl: string;
  /** A strong ETag known from the name alone. */
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

/** Opens a regular file without following a final symlink and without blocking on a FIFO. */
async function openRegular(file: string): Promise<{ fh: FileHandle; st: BigIntStats } | null> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (st.isFile()) return { fh, st };
  } catch {
    /* fall through */
  }
  await fh.close();
  return null;
}

function bufferEntity(body: Buffer, st: BigIntStats, kind: FileKind): Entity {
  return {
    size: body.length,
    // the rewritten bytes depend on the Host, so the tag is derived from them, not from the file
    etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 40)}"`,
    lastModified: new Date(Number(st.mtimeMs)),
    contentType: kind.contentType,
    cacheControl: kind.cacheControl,
    body: (start, end) => Readable.from([body.subarray(start, end + 1)]),
  };
}

/** `urlPrefix`: where the tree is mounted (`/on-demand` for the on-demand cache), for the absolute URLs in bundle lists. */
export function publishedTreeHandler(realRoot: string, urlPrefix = '') {
  return async function servePublished(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(req, res, ['GET', 'HEAD']);
    const { path } = splitTarget(target);
    const check = splitUrlPath(path);
    if (!check.ok)
      return sendText(req, res, check.status, check.status === 400 ? `bad request: ${check.reason}` : 'not found');
    const name = check.segments[check.segments.length - 1];
    const real = name === undefined ? null : await resolveInside(realRoot, check.segments);
    const opened = real === null ? null : await openRegular(real);
    if (!opened || name === undefined) return sendText(req, res, 404, 'not found');

    const { fh, st } = opened;
    let handedOver = false;
    try {
      const kind = classify(name);
      if (kind.rewriteBundleList && st.size <= BigInt(MAX_BUNDLE_LIST)) {
        const text = (await fh.readFile()).toString('utf8');
        // git 2.39 takes only absolute bundle URIs: resolve relative ones against this list's own URL
        let out = text;
        try {
          out = absolutizeBundleList(text, `${requestOrigin(req)}${urlPrefix}${path}`);
        } catch {
          /* a URI that cannot be resolved: send the list as published */
        }
        return await sendEntity(req, res, bufferEntity(Buffer.from(out, 'utf8'), st, kind));
      }
      const entity: Entity = {
        size: Number(st.size),
        etag: kind.etag ?? statEtag(st),
        lastModified: new Date(Number(st.mtimeMs)),
        contentType: kind.contentType,
        cacheControl: kind.cacheControl,
        body: (start, end) => {
          handedOver = true;
          // 1 MiB reads instead of the default 64 KiB: a 294 MiB bundle is served about twice as
          // fast on loopback (`npm run bench`, scenario 6); one such buffer per response in flight
          return fh.createReadStream({ start, end, autoClose: true, highWaterMark: READ_CHUNK });
        },
      };
      await sendEntity(req, res, entity);
    } finally {
      if (!handedOver) await fh.close().catch(() => undefined);
    }
  };
}
