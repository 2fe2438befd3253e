/**
 * What a replica does with a signature: accept the file, or refuse it with
 * a code that says why (missing, invalid, untrusted key) and names what was
 * refused, so the caller can keep its previous state for it.
 */
import { BundlemirrorError } from '../errors.js';
import { verifyBytes } from './ssh-keygen.js';

export interface SignedDocument {
  /** What the file is, for messages: `manifest http://origin/manifest.js.gz`, `index.json`. */
  what: string;
  data: Buffer;
  /** The bytes of `<file>.sig`; null when the server has none. */
  signature: Buffer | null;
  /** The repository concerned (for an index.json). */
  repo?: string | undefined;
}

/** Returns the principal that signed; throws E_SIGNATURE_MISSING, E_SIGNATURE_INVALID or E_SIGNATURE_UNTRUSTED. */
export async function requireSignature(allowedSigners: string, doc: SignedDocument): Promise<string> {
  if (!doc.signature || doc.signature.length === 0) {
    throw new BundlemirrorError(
      'E_SIGNATURE_MISSING',
      `${doc.what} is not signed (no ${doc.what.split(' ')[0]}.sig beside it), and [remote] allowed_signers requires a signature`,
      {
        repo: doc.repo,
        hint: 'publish the origin with --sign-key; if this host only relays the origin, it may serve a part of the tree that lost its signatures',
      },
    );
  }
  const verdict = await verifyBytes(allowedSigners, doc.data, doc.signature);
  if (verdict.ok) return verdict.principal;
  if (verdict.reason === 'untrusted') {
    throw new BundlemirrorError(
      'E_SIGNATURE_UNTRUSTED',
      `${doc.what} is signed by a key that ${allowedSigners} does not list`,
      {
        repo: doc.repo,
        hint: 'if the origin rotated its key, add the new key to allowed_signers (keep the old one until every file is re-signed)',
      },
    );
  }
  throw new BundlemirrorError('E_SIGNATURE_INVALID', `${doc.what} does not match its signature (${verdict.detail})`, {
    repo: doc.repo,
    hint: 'the file was changed after it was signed, on the origin or on a host in between; the previous state is kept',
  });
}

/**
 * The public key inside an armoured SSH signature (base64 of its blob), or
 * null when the bytes are not one. Lets `publish` see which key signed a
 * file without running ssh-keygen (format: OpenSSH PROTOCOL.sshsig).
 */
export function signatureKey(sig: Buffer): string | null {
  const text = sig.toString('latin1');
  const m = /-----BEGIN SSH SIGNATURE-----([\s\S]*?)-----END SSH SIGNATURE-----/.exec(text);
  if (!m) return null;
  const blob = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  if (blob.length < 14 || blob.subarray(0, 6).toString('latin1') !== 'SSHSIG') return null;
  const len = blob.readUInt32BE(10);
  if (14 + len > blob.length) return null;
  return blob.subarray(14, 14 + len).toString('base64');
}

/** The base64 key blob of an OpenSSH public key line (`ssh-ed25519 AAAA... comment`). */
export function publicKeyBlob(line: string): string | null {
  const parts = line.trim().split(/\s+/);
  return parts.length >= 2 && /^[A-Za-z0-9+/=]+$/.test(parts[1]!) ? parts[1]! : null;
}
