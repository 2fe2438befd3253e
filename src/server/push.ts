/**
 * Pushes to a mirror. A mirror never takes one (its refs are the origin's,
 * and the next pull would undo the push). Started with `--push-to URL`, it
 * sends the pusher to the master instead: the first request of a push,
 * `GET info/refs?service=git-receive-pack`, gets a 307 to the same path
 * and query under URL, which git follows (http.followRedirects defaults to
 * "initial") and then pushes to the master directly; the pushed commit
 * comes back with the next publish and pull. A `POST git-receive-pack`
 * that arrives anyway gets the same redirect, so a client that follows
 * redirects on every request lands there too. Without `--push-to`, a push
 * is refused with a 403 whose text (git prints it as `remote: ...`) says
 * where to push.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { configGet } from '../git/repo.js';
import { sendText } from './reply.js';

interface PushRequest {
  /** The master's base URL (`--push-to`), or null. */
  pushTo: string | null;
  /** The request path as the client sent it, already checked: `/git/pub/a.git/info/refs`. */
  path: string;
  /** True for the `info/refs?service=git-receive-pack` advertisement, false for the POST. */
  advertisement: boolean;
  /** The repository the path names, when this mirror serves it. */
  repo: { repoPath: string; realRepo: string } | null;
}

/** `--push-to` must be a plain http(s) base URL: it is sent to every pusher, so no credentials, query or fragment. */
export function pushToProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'is not an http or https URL';
  if (u.username !== '' || u.password !== '') return 'holds credentials, which every pusher would be sent';
  if (u.search !== '' || u.hash !== '' || url.includes('?') || url.includes('#')) return 'has a query or fragment';
  if (/[\s\x00-\x1f\x7f]/.test(url)) return 'contains spaces or control characters';
  return null;
}

export async function answerPush(req: IncomingMessage, res: ServerResponse, p: PushRequest): Promise<void> {
  if (p.pushTo !== null) {
    if (p.repo === null) return sendText(req, res, 404, `no repository at ${p.path} on this mirror`);
    const location = `${p.pushTo.replace(/\/+$/, '')}${p.path}${p.advertisement ? '?service=git-receive-pack' : ''}`;
    return sendText(req, res, 307, `this is a mirror: push to the master, ${location}`, { Location: location });
  }
  // a repository may name its master (git config bundlemirror.master); otherwise say what kind of place to push to
  const master =
    p.repo === null ? null : await configGet(p.repo.realRepo, 'bundlemirror.master', p.repo.repoPath).catch(() => null);
  const where = master
    ? `push to the master, ${master}`
    : 'push to the master repository it mirrors (its origin), not to this mirror';
  return sendText(req, res, 403, `this is a read-only mirror: ${where}`);
}
