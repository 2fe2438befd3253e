/**
 * SSH signatures through `ssh-keygen -Y` (OpenSSH 8.1+): git's own signing
 * format, so anyone can check a published file by hand with
 * `ssh-keygen -Y verify -n bundlemirror -f allowed_signers -I PRINCIPAL -s FILE.sig < FILE`.
 * Besides src/git/, this is the only code that starts a process.
 *
 * Data goes through stdin and signatures through stdout or a private temp
 * file, so nothing is ever signed or checked by a path an attacker named.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BundlemirrorError } from '../errors.js';

/** The namespace of every bundlemirror signature: a signature made for git commits or e-mail never passes for ours. */
export const SIGNATURE_NAMESPACE = 'bundlemirror';

/** Armoured SSH signatures are about 300 bytes (ed25519) to 1.5 KiB (rsa 4096): anything larger is not one. */
export const MAX_SIGNATURE_BYTES = 64 << 10;

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function sshKeygen(args: string[], input: Buffer): Promise<Run> {
  return new Promise((resolve, reject) => {
    // no agent, no prompts, a stable locale: ssh-keygen must use the key file it is given or fail
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? tmpdir(),
      LC_ALL: 'C',
    };
    // a session of its own: no controlling terminal, so an encrypted key fails instead of prompting
    const child = spawn('ssh-keygen', args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      if (err.length < 65536) err += c;
    });
    child.stdin.on('error', () => {
      /* ssh-keygen may exit before reading everything; its status says why */
    });
    child.on('error', (e) =>
      reject(
        new BundlemirrorError('E_SIGNATURE_TOOL', `cannot run ssh-keygen: ${e.message}`, {
          hint: 'install OpenSSH 8.1 or later (Debian: openssh-client)',
          cause: e,
        }),
      ),
    );
    child.on('close', (code) => resolve({ code: code ?? 255, stdout: Buffer.concat(out), stderr: err.trim() }));
    child.stdin.end(input);
  });
}

/** Signs `data` with the private key in `keyFile`; returns the armoured signature (what `FILE.sig` holds). */
export async function signBytes(keyFile: string, data: Buffer): Promise<Buffer> {
  const r = await sshKeygen(['-q', '-Y', 'sign', '-n', SIGNATURE_NAMESPACE, '-f', keyFile], data);
  if (r.code !== 0 || !r.stdout.includes('-----BEGIN SSH SIGNATURE-----')) {
    throw new BundlemirrorError(
      'E_SIGNATURE_TOOL',
      `ssh-keygen could not sign with ${keyFile}: ${lastLine(r.stderr) || `exit ${r.code}`}`,
      {
        hint: 'pass an unencrypted SSH private key (ssh-keygen -t ed25519 -N "" -f KEY) readable by this user',
      },
    );
  }
  return r.stdout;
}

export type SignatureVerdict =
  | { ok: true; principal: string }
  /** `invalid`: not a signature of these bytes (or not one at all); `untrusted`: a valid signature by a key allowed_signers does not list. */
  | { ok: false; reason: 'invalid' | 'untrusted'; detail: string };

/**
 * Checks `signature` over `data` against an allowed_signers file (git's
 * format: principal, optional options such as namespaces= or valid-after=,
 * key). Two runs in the usual case (find the principal, verify as it);
 * a third only to tell a bad signature from a foreign key.
 */
export async function verifyBytes(allowedSigners: string, data: Buffer, signature: Buffer): Promise<SignatureVerdict> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-sig-'));
  try {
    const sigFile = join(dir, 'signature.sig');
    await writeFile(sigFile, signature, { mode: 0o600 });
    const found = await sshKeygen(['-Y', 'find-principals', '-f', allowedSigners, '-s', sigFile], Buffer.alloc(0));
    const principal = found.code === 0 ? found.stdout.toString('utf8').split('\n')[0]!.trim() : '';
    if (principal) {
      const r = await sshKeygen(
        ['-Y', 'verify', '-f', allowedSigners, '-I', principal, '-n', SIGNATURE_NAMESPACE, '-s', sigFile],
        data,
      );
      if (r.code === 0) return { ok: true, principal };
      return { ok: false, reason: 'invalid', detail: lastLine(r.stderr) || 'the signature does not match the bytes' };
    }
    // no listed key made it: a valid signature by someone else, or no valid signature at all?
    const self = await sshKeygen(['-Y', 'check-novalidate', '-n', SIGNATURE_NAMESPACE, '-s', sigFile], data);
    if (self.code === 0)
      return { ok: false, reason: 'untrusted', detail: 'signed by a key that allowed_signers does not list' };
    return {
      ok: false,
      reason: 'invalid',
      detail: lastLine(self.stderr) || 'not a valid bundlemirror signature of these bytes',
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function lastLine(text: string): string {
  return text.split('\n').filter(Boolean).pop()?.slice(0, 300) ?? '';
}

/** The public key line of a private key file (`ssh-keygen -y`); fails as signing would. */
export async function publicKeyOf(keyFile: string): Promise<string> {
  const r = await sshKeygen(['-y', '-P', '', '-f', keyFile], Buffer.alloc(0));
  if (r.code !== 0) {
    throw new BundlemirrorError(
      'E_SIGNATURE_TOOL',
      `cannot read the SSH key ${keyFile}: ${lastLine(r.stderr) || `exit ${r.code}`}`,
      {
        hint: 'pass an unencrypted SSH private key (ssh-keygen -t ed25519 -N "" -f KEY) readable by this user',
      },
    );
  }
  return r.stdout.toString('utf8').trim();
}

/** True when `signature` is a valid bundlemirror signature of `data` by whatever key it names (no trust decided). */
export async function signatureMatches(data: Buffer, signature: Buffer): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'bm-sig-'));
  try {
    const sigFile = join(dir, 'signature.sig');
    await writeFile(sigFile, signature, { mode: 0o600 });
    return (await sshKeygen(['-Y', 'check-novalidate', '-n', SIGNATURE_NAMESPACE, '-s', sigFile], data)).code === 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
