/**
 * The batch API: one request names many objects, the answer says per
 * object where to download or upload it (basic transfer), or why not.
 * Bounded: a request with more than MAX_BATCH_OBJECTS objects, or a body
 * larger than MAX_BATCH_BODY, is refused with 413 before anything else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLfsOid, isLfsSize, MAX_LFS_OBJECT_SIZE } from '../../lfs/oid.js';
import { lfsObjectSize } from '../../lfs/store.js';
import { isRecord, readJsonBody, sendLfsError, sendLfsJson } from './json.js';

/** git-lfs sends 100 per request; a thousand-fold margin. */
const MAX_BATCH_OBJECTS = 10_000;
/** Enough for MAX_BATCH_OBJECTS objects with room for whitespace. */
const MAX_BATCH_BODY = 2 << 20;

interface ObjectAnswer {
  oid: string;
  size: number;
  authenticated?: boolean;
  actions?: Record<string, { href: string; header?: Record<string, string> }>;
  error?: { code: number; message: string };
}

export interface BatchContext {
  repoDir: string;
  /** `http://host/git/<repo>/info/lfs`, as the client reached us. */
  lfsUrl: string;
  /** Decides on uploads: the writer's name, or null when it already answered (401, 403, 307). */
  authorizeWrite: () => Promise<string | null>;
  /** The Authorization header to hand back with upload actions, so the PUT carries the same credentials. */
  authorization: string | undefined;
}

export async function handleBatch(req: IncomingMessage, res: ServerResponse, ctx: BatchContext): Promise<void> {
  const body = await readJsonBody(req, res, MAX_BATCH_BODY);
  if (!body.ok) return sendLfsError(req, res, body.status, body.message);
  const v = body.value;
  if (!isRecord(v)) return sendLfsError(req, res, 422, 'a batch request is a JSON object');
  const op = v.operation;
  if (op !== 'download' && op !== 'upload')
    return sendLfsError(req, res, 422, 'operation must be "download" or "upload"');
  if (v.transfers !== undefined && (!Array.isArray(v.transfers) || !v.transfers.includes('basic'))) {
    return sendLfsError(req, res, 422, 'this server speaks the "basic" transfer only');
  }
  if (v.hash_algo !== undefined && v.hash_algo !== 'sha256')
    return sendLfsError(req, res, 409, 'this server stores sha256 objects only');
  if (!Array.isArray(v.objects)) return sendLfsError(req, res, 422, 'objects must be an array');
  if (v.objects.length > MAX_BATCH_OBJECTS) {
    return sendLfsError(
      req,
      res,
      413,
      `a batch may name at most ${MAX_BATCH_OBJECTS} objects, this one names ${v.objects.length}; send smaller batches`,
    );
  }

  // uploads need a writer; the 401, 403 or 307 has been sent when there is none
  if (op === 'upload' && (await ctx.authorizeWrite()) === null) return;

  const objects: ObjectAnswer[] = [];
  let valid = 0;
  for (const o of v.objects as unknown[]) {
    const oid = isRecord(o) && typeof o.oid === 'string' ? o.oid.slice(0, 100) : '';
    const size = isRecord(o) && typeof o.size === 'number' ? o.size : -1;
    if (!isLfsOid(oid)) {
      objects.push({
        oid,
        size,
        error: { code: 422, message: 'an LFS object id is 64 lowercase hex digits (a sha256)' },
      });
      continue;
    }
    if (!isLfsSize(size)) {
      objects.push({
        oid,
        size,
        error: { code: 422, message: `size must be a whole number of bytes from 0 to ${MAX_LFS_OBJECT_SIZE}` },
      });
      continue;
    }
    valid += 1;
    const have = await lfsObjectSize(ctx.repoDir, oid);
    const href = `${ctx.lfsUrl}/objects/${oid}`;
    if (op === 'download') {
      if (have === null)
        objects.push({ oid, size, error: { code: 404, message: `object ${oid} is not on this server` } });
      else if (have !== size)
        objects.push({ oid, size, error: { code: 422, message: `object ${oid} has ${have} bytes here, not ${size}` } });
      else objects.push({ oid, size, authenticated: true, actions: { download: { href } } });
      continue;
    }
    // the server has it already: no actions, the client skips it
    if (have === size) {
      objects.push({ oid, size, authenticated: true });
      continue;
    }
    const header = ctx.authorization ? { Authorization: ctx.authorization } : undefined;
    objects.push({
      oid,
      size,
      authenticated: true,
      actions: {
        upload: { href: `${href}?size=${size}`, ...(header ? { header } : {}) },
        verify: { href: `${ctx.lfsUrl}/verify`, ...(header ? { header } : {}) },
      },
    });
  }
  if (op === 'upload' && valid === 0 && objects.length > 0) {
    return sendLfsError(req, res, 422, `none of the ${objects.length} objects is valid: ${objects[0]!.error!.message}`);
  }
  sendLfsJson(req, res, 200, { transfer: 'basic', objects, hash_algo: 'sha256' });
}
