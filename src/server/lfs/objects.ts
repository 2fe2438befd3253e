/**
 * The basic transfer: GET an object (with the same Range, If-Range and
 * HEAD handling as bundles, since git-lfs resumes with Range and needs a
 * 206), PUT one (hashed while written, visible only when whole and right),
 * and verify an upload.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLfsOid, isLfsSize, lfsObjectPath, MAX_LFS_OBJECT_SIZE } from '../../lfs/oid.js';
import { lfsObjectSize, storeLfsObject } from '../../lfs/store.js';
import { CACHE_IMMUTABLE, sendEntity } from '../send.js';
import { openOnce } from '../open-files.js';
import { isRecord, readJsonBody, sendLfsError, sendLfsJson } from './json.js';
import { isDiskFullErrno } from '../../errors.js';

export async function sendObject(
  req: IncomingMessage,
  res: ServerResponse,
  repoDir: string,
  oid: string,
  report: { log: (line: string) => void; repoPath: string },
): Promise<void> {
  if (!isLfsOid(oid)) return sendLfsError(req, res, 422, 'an LFS object id is 64 lowercase hex digits (a sha256)');
  const file = await openOnce(lfsObjectPath(repoDir, oid));
  if (file === null) return sendLfsError(req, res, 404, `object ${oid} is not on this server`);
  try {
    await sendEntity(
      req,
      res,
      {
        size: Number(file.st.size),
        etag: `"${oid}"`,
        lastModified: new Date(Number(file.st.mtimeMs)),
        contentType: 'application/octet-stream',
        cacheControl: CACHE_IMMUTABLE,
        body: { fd: file.fd },
      },
      { log: report.log, what: `LFS ${report.repoPath}: object ${oid}` },
    );
  } finally {
    file.release();
  }
}

/**
 * `size` is the size the batch request announced (in the upload URL we
 * handed out); Content-Length must agree with it, and the bytes must hash
 * to the oid, or nothing is stored.
 */
export async function receiveObject(
  req: IncomingMessage,
  res: ServerResponse,
  repoDir: string,
  oid: string,
  query: URLSearchParams,
): Promise<void> {
  if (!isLfsOid(oid))
    return sendLfsError(
      req,
      res,
      422,
      'an LFS object id is 64 lowercase hex digits (a sha256)',
      {},
      { Connection: 'close' },
    );
  const lengthHeader = req.headers['content-length'];
  if (lengthHeader === undefined || !/^\d{1,16}$/.test(lengthHeader)) {
    return sendLfsError(req, res, 411, 'an upload needs a Content-Length', {}, { Connection: 'close' });
  }
  const length = Number(lengthHeader);
  if (length > MAX_LFS_OBJECT_SIZE)
    return sendLfsError(
      req,
      res,
      413,
      `objects larger than ${MAX_LFS_OBJECT_SIZE} bytes are refused`,
      {},
      { Connection: 'close' },
    );
  const announced = query.get('size');
  if (announced !== null && (!/^\d{1,16}$/.test(announced) || Number(announced) !== length)) {
    return sendLfsError(
      req,
      res,
      422,
      `the batch request announced ${announced} bytes for ${oid}, this upload has ${length}`,
      {},
      { Connection: 'close' },
    );
  }
  let outcome;
  try {
    outcome = await storeLfsObject(repoDir, oid, length, req);
  } catch (err) {
    if (!isDiskFullErrno(err)) throw err;
    return sendLfsError(req, res, 507, `the server's disk is full; ${oid} was not stored`, {}, { Connection: 'close' });
  }
  if (outcome.ok) {
    res.statusCode = 200;
    res.setHeader('Content-Length', 0);
    res.end();
    return;
  }
  if (outcome.reason === 'aborted' || res.destroyed) return; // the client is gone; nobody to answer
  res.setHeader('Connection', 'close');
  if (outcome.reason === 'hash-mismatch')
    return sendLfsError(req, res, 422, `the uploaded bytes hash to ${outcome.sha256}, not ${oid}; nothing was stored`);
  if (outcome.reason === 'too-large')
    return sendLfsError(req, res, 413, `the upload of ${oid} is longer than its Content-Length; nothing was stored`);
  return sendLfsError(
    req,
    res,
    400,
    `the upload of ${oid} ended after ${outcome.size} of ${length} bytes; nothing was stored`,
  );
}

export async function verifyObject(req: IncomingMessage, res: ServerResponse, repoDir: string): Promise<void> {
  const body = await readJsonBody(req, res, 4096);
  if (!body.ok) return sendLfsError(req, res, body.status, body.message);
  const v = body.value;
  if (!isRecord(v) || !isLfsOid(v.oid) || !isLfsSize(v.size))
    return sendLfsError(req, res, 422, 'verify needs {"oid": 64 hex digits, "size": a byte count}');
  const size = await lfsObjectSize(repoDir, v.oid);
  if (size === null) return sendLfsError(req, res, 404, `object ${v.oid} is not on this server`);
  if (size !== v.size) return sendLfsError(req, res, 422, `object ${v.oid} has ${size} bytes here, not ${v.size}`);
  sendLfsJson(req, res, 200, {});
}
