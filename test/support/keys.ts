/** SSH signing keys for tests, made with the real ssh-keygen, and their allowed_signers files. */
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SigningKey {
  /** Private key file (for publish --sign-key). */
  key: string;
  /** `principal key-type base64` line, git's allowed_signers format. */
  signerLine: string;
  /** An allowed_signers file listing only this key. */
  allowedSigners: string;
}

export async function makeSigningKey(dir: string, name: string): Promise<SigningKey> {
  const key = join(dir, `${name}-key`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key]);
  const [type, blob] = (await readFile(`${key}.pub`, 'utf8')).trim().split(/\s+/);
  const signerLine = `${name}@example.org ${type} ${blob}`;
  const allowedSigners = join(dir, `${name}.allowed_signers`);
  await writeFile(allowedSigners, signerLine + '\n');
  return { key, signerLine, allowedSigners };
}
