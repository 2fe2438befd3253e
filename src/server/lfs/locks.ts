/**
 * The file locking API: create, list, verify (ours and theirs for the
 * caller) and unlock (another writer's lock only with `force`). Every
 * operation is made by a writer; the callers of these functions have
 * already checked that.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LfsLockStore, lockPathProblem, type LfsLock } from '../../lfs/locks.js';
import { isRecord, readJsonBody, sendLfsError, sendLfsJson } from './json.js';

const MAX_LOCK_BODY = 16 << 10;

/** The JSON object of a lock request, or null once the client has been answered with why not. */
async function readLockRequest(
  req: IncomingMessage,
  res: ServerResponse,
  what: string,
): Promise<Record<string, unknown> | null> {
  const body = await readJsonBody(req, res, MAX_LOCK_BODY);
  if (!body.ok) {
    sendLfsError(req, res, body.status, body.message);
    return null;
  }
  if (!isRecord(body.value)) {
    sendLfsError(req, res, 422, `${what} is a JSON object`);
    return null;
  }
  return body.value;
}
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const LOCK_ID = /^[0-9a-f]{32}$/;

interface WireLock {
  id: string;
  path: string;
  locked_at: string;
  owner: { name: string };
}

const wire = (l: LfsLock): WireLock => ({ id: l.id, path: l.path, locked_at: l.lockedAt, owner: { name: l.owner } });

function refProblem(ref: unknown): string | null {
  if (ref === undefined || ref === null) return null;
  if (!isRecord(ref) || (ref.name !== undefined && (typeof ref.name !== 'string' || ref.name.length > 4096)))
    return 'ref must be {"name": "refs/heads/..."}';
  return null;
}

/** One page of `locks` starting at the lock whose id is `cursor`; the cursor of the next page, if any. */
function page(locks: LfsLock[], cursor: unknown, limitRaw: unknown): { items: LfsLock[]; next?: string } | string {
  let limit = DEFAULT_LIMIT;
  if (limitRaw !== undefined && limitRaw !== null && limitRaw !== '') {
    const n = typeof limitRaw === 'number' ? limitRaw : /^\d{1,6}$/.test(String(limitRaw)) ? Number(limitRaw) : NaN;
    if (!Number.isInteger(n) || n < 1) return 'limit must be a positive whole number';
    limit = Math.min(n, MAX_LIMIT);
  }
  let start = 0;
  if (cursor !== undefined && cursor !== null && cursor !== '') {
    start = typeof cursor === 'string' ? locks.findIndex((l) => l.id === cursor) : -1;
    if (start < 0) return 'cursor names no lock (it may have been unlocked); list again from the start';
  }
  const items = locks.slice(start, start + limit);
  const next = locks[start + limit];
  return next ? { items, next: next.id } : { items };
}

export async function createLock(
  req: IncomingMessage,
  res: ServerResponse,
  repoDir: string,
  user: string,
): Promise<void> {
  const v = await readLockRequest(req, res, 'a lock request');
  if (!v) return;
  const problem = lockPathProblem(v.path) ?? refProblem(v.ref);
  if (problem) return sendLfsError(req, res, 422, `lock path ${problem}`);
  const outcome = await new LfsLockStore(repoDir).create(v.path as string, user);
  if (outcome.created) return sendLfsJson(req, res, 201, { lock: wire(outcome.lock) });
  if ('existing' in outcome)
    return sendLfsError(req, res, 409, `${outcome.existing.path} is already locked by ${outcome.existing.owner}`, {
      lock: wire(outcome.existing),
    });
  return sendLfsError(req, res, 507, 'this repository holds too many locks; unlock some first');
}

export async function listLocks(
  req: IncomingMessage,
  res: ServerResponse,
  repoDir: string,
  query: URLSearchParams,
): Promise<void> {
  const path = query.get('path');
  const id = query.get('id');
  let locks = await new LfsLockStore(repoDir).list();
  if (path !== null && path !== '') locks = locks.filter((l) => l.path === path);
  if (id !== null && id !== '') locks = locks.filter((l) => l.id === id);
  const p = page(locks, query.get('cursor') ?? undefined, query.get('limit') ?? undefined);
  if (typeof p === 'string') return sendLfsError(req, res, 422, p);
  sendLfsJson(req, res, 200, { locks: p.items.map(wire), ...(p.next ? { next_cursor: p.next } : {}) });
}

export async function verifyLocks(
  req: IncomingMessage,
  res: ServerResponse,
  repoDir: string,
  user: string,
): Promise<void> {
  const v = await readLockRequest(req, res, 'a verify request');
  if (!v) return;
  const problem = refProblem(v.ref);
  if (problem) return sendLfsError(req, res, 422, problem);
  const p = page(await new LfsLockStore(repoDir).list(), v.cursor, v.limit);
  if (typeof p === 'string') return sendLfsError(req, res, 422, p);
  sendLfsJson(req, res, 200, {
    ours: p.items.filter((l) => l.owner === user).map(wire),
    theirs: p.items.filter((l) => l.owner !== user).map(wire),
    ...(p.next ? { next_cursor: p.next } : {}),
  });
}

export async function unlock(
  req: IncomingMessage,
  res: ServerResponse,
  repoDir: string,
  id: string,
  user: string,
): Promise<void> {
  const v = await readLockRequest(req, res, 'an unlock request');
  if (!v) return;
  if (v.force !== undefined && typeof v.force !== 'boolean')
    return sendLfsError(req, res, 422, 'force must be true or false');
  if (!LOCK_ID.test(id)) return sendLfsError(req, res, 404, 'no such lock');
  const outcome = await new LfsLockStore(repoDir).unlock(id, user, v.force === true);
  if (outcome.ok) return sendLfsJson(req, res, 200, { lock: wire(outcome.lock) });
  if (outcome.reason === 'not-found') return sendLfsError(req, res, 404, 'no such lock');
  return sendLfsError(
    req,
    res,
    403,
    `${outcome.lock!.path} is locked by ${outcome.lock!.owner}; unlock with --force to break another writer's lock`,
    { lock: wire(outcome.lock!) },
  );
}
