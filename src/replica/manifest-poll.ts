/**
 * Polling the origin's manifest: a conditional request with the validators of
 * the last complete run, the signature and freshness check when the replica
 * trusts only signed manifests, and the copy `status` and `fsck` read later.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../fs/atomic.js';
import { fetchDocumentFromHosts } from '../transfer/document.js';
import type { PullConfig } from './config/config.js';
import type { StateStore } from './state.js';
import type { ManifestValidators } from './state-file.js';
import { manifestRedirects, missingManifest, remoteManifestCopyPath } from './remote-manifest.js';
import {
  checkManifestFreshness,
  readAcceptedManifest,
  recordAcceptedManifest,
  verifyFetched,
} from './trusted-documents.js';
import { manifestStamp } from '../manifest/manifest-stamp.js';
import { VERSION } from '../version.js';
import type { PullOptions } from './pull-options.js';

/** Largest manifest download accepted (compressed); the unpacked limit is in manifest.ts. */
const MAX_MANIFEST_DOWNLOAD = 256 << 20;

interface FetchedManifest {
  unchanged: boolean;
  bytes: Buffer;
  validators?: ManifestValidators;
  /** The publish time a signed manifest carries; null when unsigned or not checked. */
  published: string | null;
  /** The bytes of the manifest the last complete run settled (see ManifestValidators.settled), for reading this one as an edit. */
  settled?: Buffer;
}

/**
 * The sha256 that ManifestValidators.settled records: of the bytes and the
 * version that checked them (a newer bundlemirror, whose checks may be
 * stricter, reads the next change whole).
 */
export const settledDigest = (bytes: Buffer) => createHash('sha256').update(`${VERSION}\0`).update(bytes).digest('hex');

/**
 * With [remote] allowed_signers, a changed manifest must be signed by a
 * listed key and not older than the newest accepted; nothing is stored
 * before it passes, so a refused manifest leaves the replica as it was.
 */
async function trustManifest(
  config: PullConfig,
  url: string,
  body: Buffer,
  opts: PullOptions,
): Promise<{ bytes: Buffer; refetched: boolean; published: string | null }> {
  const signers = config.remote.allowedSigners;
  if (!signers) return { bytes: body, refetched: false, published: null };
  const doc = await verifyFetched(url, body, {
    allowedSigners: signers,
    what: `manifest ${url}`,
    maxBytes: MAX_MANIFEST_DOWNLOAD,
    signal: opts.signal,
    redirects: manifestRedirects(config),
  });
  const accepted = checkManifestFreshness(
    doc.body,
    url,
    doc.principal,
    await readAcceptedManifest(config.core.toplevel),
    new Date(),
  );
  await recordAcceptedManifest(config.core.toplevel, accepted);
  opts.log.debug(`manifest ${url}: signed by ${doc.principal}, published ${accepted.published}`);
  return { bytes: doc.body, refetched: doc.refetched, published: accepted.published };
}

export async function fetchRemoteManifest(
  config: PullConfig,
  state: StateStore,
  opts: PullOptions,
  partial: boolean,
): Promise<FetchedManifest> {
  const url = config.remote.manifest;
  const copy = remoteManifestCopyPath(config.core.toplevel);
  const prior = await state.manifestValidators(url);
  const cached = await readFile(copy).catch(() => null);
  // validators are only useful while we still hold the bytes they describe, and grok-pull refetches after a config change
  const usable = cached && prior && prior.configMtimeMs === config.mtimeMs && !opts.noMtimeCheck;
  // with [remote] mirrors, the manifest comes from the primary when it answers, else from a mirror
  const doc = await fetchDocumentFromHosts(url, opts.mirrors, {
    etag: usable ? (prior.etag ?? undefined) : undefined,
    lastModified: usable ? (prior.lastModified ?? undefined) : undefined,
    maxBytes: MAX_MANIFEST_DOWNLOAD,
    redirects: manifestRedirects(config),
    signal: opts.signal,
    retryForMs: opts.retryForMs ?? config.pull.retryForMs,
    onWait: opts.onWait ? (w) => opts.onWait!(null, w) : undefined,
  }).catch((err: unknown) => {
    throw missingManifest(config, err);
  });
  if (doc.status === 'unchanged') {
    opts.log.debug(`manifest ${url} unchanged (304)`);
    // the copy was verified when it was saved
    return { unchanged: true, bytes: cached!, published: config.remote.allowedSigners ? manifestStamp(cached!) : null };
  }
  const trusted = await trustManifest(config, url, doc.body, opts);
  // The new validators are recorded only when this run ends (pullLocked): a run killed half-way
  // (kill -9, power loss) must not make the next one answer "manifest unchanged" for work it never did.
  // They are forgotten before the copy changes: a kill in between must not pair the old validators with new bytes.
  await forgetManifestValidators(config, state);
  await writeFileAtomic(copy, trusted.bytes);
  // the copy as it was before this fetch, if a complete run settled exactly those bytes and the config is the same
  const settled = usable && prior.settled && settledDigest(cached) === prior.settled ? { settled: cached } : {};
  const fetched = { unchanged: false, bytes: trusted.bytes, published: trusted.published, ...settled };
  // a partial run keeps the bytes (status reads them) but records no validators: the next full run must not answer "unchanged" for work this one did not do
  // (nor does a manifest fetched again after a signature mismatch: the validators describe the first bytes)
  if (partial || trusted.refetched) return fetched;
  return {
    ...fetched,
    validators: {
      url,
      etag: doc.etag ?? null,
      lastModified: doc.lastModified ?? null,
      fetchedAt: new Date().toISOString(),
      configMtimeMs: config.mtimeMs,
    },
  };
}

export async function forgetManifestValidators(config: PullConfig, state: StateStore): Promise<void> {
  const prior = await state.manifestValidators(config.remote.manifest);
  if (prior) {
    const { settled: _, ...rest } = prior;
    await state.setManifestValidators({ ...rest, etag: null, lastModified: null });
  }
}
