/**
 * Push notifications from the origin: after a publish, tell each replica
 * daemon which repositories changed, so it pulls them now instead of at its
 * next refresh. `POST <url>` with `{"repos": [...]}` and the shared bearer
 * token, a short timeout, no retries: a replica that does not hear it still
 * picks the change up at its next refresh, so a failure is reported and
 * never fails the publish.
 */
import { readFile, stat } from 'node:fs/promises';
import { BundlemirrorError } from '../errors.js';
import { postOnce } from '../transfer/post.js';

/** Default time for one notification, connection to answer. */
export const NOTIFY_TIMEOUT_MS = 5000;
/** Repositories per request: keeps each body well under the replica's 64 KiB cap. */
export const NOTIFY_BATCH = 500;

export interface NotifyReplicasOptions {
  urls: readonly string[];
  token: string;
  /** Manifest paths that changed. */
  repos: readonly string[];
  timeoutMs?: number;
}

export interface NotifyAttempt {
  url: string;
  ok: boolean;
  /** HTTP status, when the replica answered. */
  status?: number;
  /** What went wrong, when ok is false. */
  error?: string;
  ms: number;
}

/** Checks a --notify URL; throws E_USAGE. */
export function checkNotifyUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BundlemirrorError(
      'E_USAGE',
      `--notify takes an http(s) URL such as http://replica.example:8090/notify, not ${JSON.stringify(url)}`,
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new BundlemirrorError('E_USAGE', `--notify takes an http(s) URL, not ${JSON.stringify(url)}`);
  if (u.username || u.password)
    throw new BundlemirrorError(
      'E_USAGE',
      '--notify URLs must not carry credentials; the token comes from --notify-token-file',
    );
  return u.href;
}

/** The shared token: the file's one line, trimmed. Throws E_USAGE; `warn` hears about a file every user can read. */
export async function readNotifyTokenFile(file: string, warn: (message: string) => void = () => {}): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BundlemirrorError(
      'E_USAGE',
      `cannot read --notify-token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      {
        hint: 'it holds the token the replicas have in [bundlemirror] notify_token_file',
      },
    );
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token))
    throw new BundlemirrorError('E_USAGE', `--notify-token-file ${file} must hold one token on one line`);
  // the token lets anyone make every replica pull: as the replica's daemon does for its copy, say so when all can read it
  if (((await stat(file)).mode & 0o004) !== 0)
    warn(`--notify-token-file ${file} is readable by every user; chmod 600 it (or 640 with a group of the publishers)`);
  return token;
}

/** Notifies every URL in parallel; resolves with one attempt per URL (never rejects). */
export async function notifyReplicas(opts: NotifyReplicasOptions): Promise<NotifyAttempt[]> {
  const batches: string[][] = [];
  for (let i = 0; i < opts.repos.length; i += NOTIFY_BATCH) batches.push(opts.repos.slice(i, i + NOTIFY_BATCH));
  return Promise.all(
    opts.urls.map(async (url) => {
      const started = Date.now();
      let last: { ok: boolean; status?: number; error?: string } = { ok: true };
      for (const repos of batches) {
        last = await postOnce(url, JSON.stringify({ repos }), {
          headers: {
            'Content-Type': 'application/json',
            Authorization: `Bearer ${opts.token}`,
            'User-Agent': 'bundlemirror-publish',
          },
          timeoutMs: opts.timeoutMs ?? NOTIFY_TIMEOUT_MS,
        });
        if (!last.ok) break;
      }
      return { url, ...last, ms: Date.now() - started };
    }),
  );
}
