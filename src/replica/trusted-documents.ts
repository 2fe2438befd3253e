/**
 * With `[remote] allowed_signers`, the manifest and every index.json count
 * only with a valid signature by a listed key, and the manifest only when it
 * is not older than the newest one this replica accepted (a host in between
 * replaying yesterday's signed tree). Nothing is written before a document
 * passes, so a refusal keeps the replica's previous state.
 *
 * A publish writes a signature before the file it signs; a reader fetches
 * the file, then the signature. A publish in between can pair an old file
 * with a new signature: such a mismatch is fetched again, once.
 *
 * The newest accepted manifest is remembered in
 * `<toplevel>/.bundlemirror/accepted-manifest.json`, apart from state.json
 * (a cache anyone may delete): deleting it lets one older tree through.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { BundlemirrorError } from '../errors.js';
import { writeFileAtomic } from '../fs/atomic.js';
import { manifestStamp } from '../manifest/manifest-stamp.js';
import { signatureOf } from '../manifest/signature-files.js';
import { MAX_SIGNATURE_BYTES } from '../sign/ssh-keygen.js';
import { requireSignature } from '../sign/trust.js';
import { fetchDocument } from '../transfer/document.js';
import type { RedirectRule } from '../transfer/http.js';
import { stateDir } from './paths.js';

/** An allowed_signers file that cannot be read would make every signature look foreign: say so up front. */
export async function checkAllowedSigners(file: string | null): Promise<void> {
  if (!file) return;
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new BundlemirrorError('E_CONFIG', `[remote] allowed_signers ${file} cannot be read: ${err.message}`, {
      hint: "fix the path, or the file's permissions for this user",
      cause: err,
    });
  });
  if (!text.split('\n').some((l) => l.trim() !== '' && !l.trim().startsWith('#'))) {
    throw new BundlemirrorError('E_CONFIG', `[remote] allowed_signers ${file} lists no key`, {
      hint: 'add a line "principal key-type base64-key" per trusted key (git\'s allowed_signers format)',
    });
  }
}

export interface SignedFetchOptions {
  allowedSigners: string;
  /** What the document is, for messages (`manifest URL`, `index.json`). */
  what: string;
  maxBytes: number;
  repo?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Where redirects of the document and its signature may lead (as for the document alone). */
  redirects?: RedirectRule | undefined;
}

export interface VerifiedDocument {
  body: Buffer;
  /** The signature that holds for `body` (what a tier serves beside it). */
  signature: Buffer;
  principal: string;
  /** True when the body is not the one passed in (it was fetched again after a mismatch). */
  refetched: boolean;
}

/**
 * Verifies `body` (already fetched from `url`) against `<url>.sig`; on a
 * refusal fetches both again once. Throws the signature error otherwise.
 */
export async function verifyFetched(url: string, body: Buffer, opts: SignedFetchOptions): Promise<VerifiedDocument> {
  const check = async (data: Buffer) => {
    const signature = await readSignature(url, opts);
    const principal = await requireSignature(opts.allowedSigners, {
      what: opts.what,
      data,
      signature,
      repo: opts.repo,
    });
    return { signature: signature!, principal };
  };
  try {
    return { body, ...(await check(body)), refetched: false };
  } catch (err) {
    if (!(err instanceof BundlemirrorError) || !err.code.startsWith('E_SIGNATURE_') || err.code === 'E_SIGNATURE_TOOL')
      throw err;
    const again = await readDocument(url, opts);
    return { body: again, ...(await check(again)), refetched: true };
  }
}

/** A document by URL (http(s), or file: for a tree on a shared disk: the same door, the same confinement). */
export async function readDocument(
  url: string,
  opts: Pick<SignedFetchOptions, 'maxBytes' | 'signal' | 'redirects'>,
): Promise<Buffer> {
  const doc = await fetchDocument(url, { maxBytes: opts.maxBytes, signal: opts.signal, redirects: opts.redirects });
  if (doc.status !== 'ok')
    throw new BundlemirrorError('E_HTTP', `GET ${url}: unexpected 304 to an unconditional request`);
  return doc.body;
}

/** `<url>.sig`, or null when there is none (404, missing file). */
export async function readSignature(
  url: string,
  opts: Pick<SignedFetchOptions, 'signal' | 'redirects'>,
): Promise<Buffer | null> {
  try {
    return await readDocument(signatureOf(url), {
      maxBytes: MAX_SIGNATURE_BYTES,
      signal: opts.signal,
      redirects: opts.redirects,
    });
  } catch (err) {
    if (err instanceof BundlemirrorError && err.code === 'E_NOT_FOUND') return null;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

const ACCEPTED_FILE = 'accepted-manifest.json';

const AcceptedManifestSchema = z.object({
  /** The stamp (publish time, ISO) of the newest manifest accepted. */
  published: z.string(),
  principal: z.string(),
  url: z.string(),
  acceptedAt: z.string(),
});
export type AcceptedManifest = z.infer<typeof AcceptedManifestSchema>;

export async function readAcceptedManifest(toplevel: string): Promise<AcceptedManifest | null> {
  try {
    return AcceptedManifestSchema.parse(JSON.parse(await readFile(join(stateDir(toplevel), ACCEPTED_FILE), 'utf8')));
  } catch {
    return null;
  }
}

/**
 * The rollback rule for a manifest whose signature holds: it must carry a
 * stamp, and the stamp must not be older than the newest accepted. Returns
 * the record to keep once the manifest is acted on.
 */
export function checkManifestFreshness(
  bytes: Buffer,
  url: string,
  principal: string,
  accepted: AcceptedManifest | null,
  now: Date,
): AcceptedManifest {
  const published = manifestStamp(bytes);
  if (!published) {
    throw new BundlemirrorError(
      'E_SIGNATURE_MISSING',
      `manifest ${url} is signed but carries no publish time, so a replayed older tree could not be told apart`,
      {
        hint: 'publish the origin with a current bundlemirror (publish --sign-key stamps the manifest)',
      },
    );
  }
  if (accepted && Date.parse(published) < Date.parse(accepted.published)) {
    throw new BundlemirrorError(
      'E_ROLLBACK',
      `manifest ${url} was published ${published}, before the manifest this replica already accepted (published ${accepted.published}): an older tree replayed`,
      {
        hint: 'a host between the origin and this replica serves an old copy; the previous state is kept. Point [remote] at an up-to-date host',
      },
    );
  }
  return { published, principal, url, acceptedAt: now.toISOString() };
}

export async function recordAcceptedManifest(toplevel: string, accepted: AcceptedManifest): Promise<void> {
  const previous = await readAcceptedManifest(toplevel);
  if (previous && Date.parse(previous.published) > Date.parse(accepted.published)) return;
  await writeFileAtomic(join(stateDir(toplevel), ACCEPTED_FILE), JSON.stringify(accepted, null, 1) + '\n');
}
