/**
 * What a caller asks of one resumable, verified download, and what it is
 * told back: the contract of downloadFile, apart from the loop that keeps it.
 */
import type { BundlemirrorError } from '../errors.js';
import type { BackoffOptions } from './backoff.js';
import type { HttpTimeouts, RedirectRule } from './http.js';
import type { MirrorSet } from './mirrors.js';
import type { DownloadProgress } from './progress.js';
import type { RetryWait } from './retry-policy.js';

export interface DownloadFileOptions {
  url: string;
  /** Where redirects may lead (default: the URL's own origin). */
  redirects?: RedirectRule | undefined;
  /** Final path; written only once the content is verified. */
  dest: string;
  expectedSize: number;
  /** Lowercase hex sha256 of the whole file; also names the partial. */
  sha256: string;
  /** Where partials live (the replica passes `<toplevel>/.bundlemirror/partial/`); same filesystem as `dest` ideally. */
  partialDir: string;
  onProgress?: ((p: DownloadProgress) => void) | undefined;
  /** Aborting keeps the partial for the next run and rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** How long to keep trying after the last byte arrived (default DEFAULT_RETRY_FOR_MS): an outage shorter than this costs only time. */
  retryForMs?: number | undefined;
  /** Told before each wait between attempts: what failed and how long we wait. */
  onWait?: ((w: RetryWait) => void) | undefined;
  /** What the user runs to continue, for the give-up hint (default: "the next pull resumes from there"). */
  resumeHint?: string | undefined;
  /**
   * Other hosts of the same tree (`url` must be under the set's primary
   * root): each attempt goes to the best host, a failing or stalling host
   * rests while the next attempt goes to another, and the partial continues
   * from wherever it stopped. A host whose bytes fail the hash is skipped
   * for this file.
   */
  mirrors?: MirrorSet | undefined;
  /** Told when a host served this file wrong and is skipped for it (to report it). */
  onWrongHost?: ((root: string, error: BundlemirrorError) => void) | undefined;
  /** The repository this file belongs to (for `mirrors.servedBy`). */
  repo?: string | undefined;
  /** Also give up after this many consecutive attempts without progress (tests; default: time decides). */
  retries?: number | undefined;
  /** Also give up after this many attempts without progress in total (tests; default: time decides). */
  maxAttempts?: number | undefined;
  timeouts?: Partial<HttpTimeouts> | undefined;
  backoff?: Partial<BackoffOptions> | undefined;
  /** Minimum interval between onProgress calls (default 250 ms); the final call always happens. */
  progressIntervalMs?: number | undefined;
}

export interface DownloadResult {
  path: string;
  /** Body bytes received over the network by this call (including any that were discarded). */
  bytesDownloaded: number;
  /** Bytes that were on disk when the call started and ended up in the file. */
  bytesResumed: number;
  /** HTTP requests made. 0 when a complete partial only needed verifying. */
  attempts: number;
  /** Times the partial was emptied and the download started over. */
  restarts: number;
  /** Bytes read back from disk to hash them (the resumed prefix, normally); everything else was hashed as it was written. */
  bytesHashedFromDisk: number;
}
