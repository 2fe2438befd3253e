/**
 * `publish --sign-key`: signs what a replica must be able to trust (the
 * manifest and each index.json). The signature of a file is written before
 * the file itself: a reader that fetches the file and then its signature
 * never meets a new file with an old signature, only (briefly) an old file
 * with a new one, which it refuses and fetches again.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../fs/atomic.js';
import { signatureOf } from '../manifest/signature-files.js';
import { publicKeyOf, signBytes } from '../sign/ssh-keygen.js';
import { publicKeyBlob, signatureKey } from '../sign/trust.js';

export interface Signer {
  keyFile: string;
  /** Signs `bytes` and writes `<file>.sig`; the caller then writes `file`. */
  signBeforeWriting(file: string, bytes: Buffer | string): Promise<void>;
  /** True when `<file>.sig` is missing or was made with another key (a rotation). */
  needsSignature(file: string): Promise<boolean>;
}

export async function signerFor(keyFile: string): Promise<Signer> {
  const publicKey = publicKeyBlob(await publicKeyOf(keyFile));
  return {
    keyFile,
    async signBeforeWriting(file, bytes) {
      const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
      await writeFileAtomic(signatureOf(file), await signBytes(keyFile, data));
    },
    async needsSignature(file) {
      const sig = await readFile(signatureOf(file)).catch(() => null);
      return !sig || signatureKey(sig) !== publicKey;
    },
  };
}
