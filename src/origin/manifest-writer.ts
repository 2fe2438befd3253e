/**
 * Writes manifest.js.gz, the last file of every publish, only when its
 * content changed, or when a signed publish must renew its stamp. The
 * signature goes first, then the manifest by atomic rename, then the
 * sha256 of what was written (`.manifest.sha256`, a dotfile: never served,
 * mirrored or collected), by which the next publish knows the file is
 * still its own and reads it without checking its entries again.
 */
import { createHash } from 'node:crypto';
import { readFile, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import {
  packManifest,
  readManifestWithText,
  serializeManifest,
  type Manifest,
  type ManifestRead,
} from '../manifest/manifest.js';
import { spliceManifest } from '../manifest/manifest-splice.js';
import { signatureOf } from '../manifest/signature-files.js';
import { manifestStamp, stampManifest, unstampManifest } from '../manifest/manifest-stamp.js';
import type { Signer } from './signer.js';
import { VERSION } from '../version.js';

export async function writeManifestIfChanged(
  file: string,
  manifest: Manifest,
  signer: Signer | null,
  opts: {
    restamp: boolean;
    now: number;
    /** Told when a signed manifest is replaced by an unsigned one (no key this time): replicas that require signatures stop. */
    warn?: (line: string) => void;
    /**
     * The manifest as read before this write (readPublishedManifestText), when
     * `manifest` is a copy of it with only the entries named by `changed`
     * put in, replaced or deleted: the other entries' JSON is reused as it is
     * (src/manifest/manifest-splice.ts).
     */
    previous?: { read: ManifestRead | null; changed: Iterable<string> };
  },
): Promise<boolean> {
  const read = opts.previous?.read;
  const spliced = read?.ownJson ? spliceManifest(read.ownJson, read.manifest, manifest, opts.previous!.changed) : null;
  const content = spliced ? packManifest(spliced) : serializeManifest(manifest);
  let bytes = content;
  let previousMtime: number | null = null;
  try {
    const previous = await readFile(file);
    const same = Buffer.compare(unstampManifest(previous), content) === 0;
    const signedAlready = signer && manifestStamp(previous) !== null && !(await signer.needsSignature(file));
    if (same && (!signer || (signedAlready && !opts.restamp))) {
      await recordDigest(file, previous);
      return false;
    }
    previousMtime = (await stat(file)).mtimeMs;
    // the stamp never goes backwards, even when the clock does
    const last = manifestStamp(previous);
    if (signer) bytes = stampManifest(content, new Date(Math.max(opts.now, last ? Date.parse(last) + 1 : 0)));
  } catch {
    /* first publish */
    if (signer) bytes = stampManifest(content, new Date(opts.now));
  }
  if (signer) await signer.signBeforeWriting(file, bytes);
  else if (await unlinkIfThere(signatureOf(file)))
    opts.warn?.(
      `${file} was signed and this publish has no signing key: it goes out unsigned, and replicas with [remote] allowed_signers refuse the tree (E_SIGNATURE_MISSING) until a publish with the key. ` +
        'Give every publish the same key (--sign-key, or -c with the sign_key the other publishes read)',
    );
  await writeFileAtomic(file, bytes);
  // Static hosts derive validators from whole seconds (nginx: ETag "mtime-size",
  // Last-Modified): a second manifest within the same second could look
  // unchanged to a replica. Move the clock of the file forward instead.
  if (previousMtime !== null) {
    const second = Math.floor(previousMtime / 1000);
    if (Math.floor((await stat(file)).mtimeMs / 1000) <= second)
      await utimes(file, new Date(), new Date((second + 1) * 1000));
  }
  await recordDigest(file, bytes);
  return true;
}

const digestFile = (file: string) => join(dirname(file), '.manifest.sha256');
/**
 * What `.manifest.sha256` holds for these manifest bytes: their sha256 and
 * the version that checked them, so that a newer bundlemirror, whose checks
 * may be stricter, checks every entry once again.
 */
const digestLine = (bytes: Buffer) => `${createHash('sha256').update(bytes).digest('hex')} ${VERSION}\n`;

/**
 * Notes the digest of the manifest as written (only when it differs: a hook
 * publish that wrote nothing writes nothing). It only spares the next
 * publish its checks, so it never fails a publish: when it cannot be
 * written (a full disk), the digest there, if any, names other bytes or is
 * removed, and the next publish checks every entry.
 */
async function recordDigest(file: string, bytes: Buffer): Promise<void> {
  const digest = digestLine(bytes);
  try {
    if ((await readFile(digestFile(file), 'utf8').catch(() => null)) !== digest)
      await writeFileAtomic(digestFile(file), digest);
  } catch {
    await rm(digestFile(file), { force: true }).catch(() => {});
  }
}

/**
 * The published tree's manifest, for a publish to carry entries over: when
 * its bytes are the ones the last publish wrote (their digest), read as they
 * are; otherwise (edited, copied in, written before digests) each entry is
 * checked, and one that is unreadable is reported to `unreadable` and null
 * returned, as when there is none.
 */
export async function readPublishedManifest(
  file: string,
  unreadable?: (why: string) => void,
): Promise<Manifest | null> {
  return (await readPublishedManifestText(file, unreadable))?.manifest ?? null;
}

/** readPublishedManifest, with the text a later write may splice into. */
export function readPublishedManifestText(
  file: string,
  unreadable?: (why: string) => void,
): Promise<ManifestRead | null> {
  return readManifestWithText(
    file,
    unreadable,
    async (bytes) => (await readFile(digestFile(file), 'utf8').catch(() => null)) === digestLine(bytes),
  );
}

/** Removes a file; whether there was one. */
async function unlinkIfThere(path: string): Promise<boolean> {
  try {
    await rm(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
