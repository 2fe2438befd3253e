/**
 * Who may upload LFS objects and take locks: the `--lfs-writers FILE` of
 * `serve`, one `name token` per line (`#` comments and blank lines
 * ignored). Tokens are compared in constant time over their sha256, so
 * neither a token's content nor its length shows in response times; an
 * unknown name costs the same comparison as a known one.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BundlemirrorError } from '../errors.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
const MAX_FILE = 1 << 20;

export interface Writer {
  name: string;
  tokenHash: Buffer;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const NOBODY = digest('\0no writer has this token\0');

export function parseWriters(text: string, file: string): Map<string, Writer> {
  const writers = new Map<string, Writer>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(\S+)\s+(\S+)$/.exec(line);
    const where = `${file} line ${i + 1}`;
    if (!m)
      throw new BundlemirrorError('E_CONFIG', `${where}: expected "name token"`, {
        hint: 'one writer per line: a name, a space, a token without spaces',
      });
    const [, name, token] = m as unknown as [string, string, string];
    if (!NAME.test(name))
      throw new BundlemirrorError('E_CONFIG', `${where}: the name must be letters, digits and . _ @ + - (at most 128)`);
    if (token.length < 8)
      throw new BundlemirrorError('E_CONFIG', `${where}: the token of ${name} is shorter than 8 characters`, {
        hint: 'use a long random token, e.g. `head -c 24 /dev/urandom | base64`',
      });
    if (writers.has(name)) throw new BundlemirrorError('E_CONFIG', `${where}: ${name} is listed twice`);
    writers.set(name, { name, tokenHash: digest(token) });
  });
  return writers;
}

export class LfsWriters {
  private constructor(
    readonly file: string,
    private writers: Map<string, Writer>,
  ) {}

  static async load(file: string): Promise<LfsWriters> {
    return new LfsWriters(file, await readWritersFile(file));
  }

  /** Re-reads the file; on any problem the previous list stays in force and the error is thrown. */
  async reload(): Promise<number> {
    this.writers = await readWritersFile(this.file);
    return this.writers.size;
  }

  /** The writer's name when `name` and `token` match a line of the file, else null. */
  check(name: string, token: string): string | null {
    const writer = this.writers.get(name);
    const same = timingSafeEqual(writer?.tokenHash ?? NOBODY, digest(token));
    return writer && same ? writer.name : null;
  }
}

async function readWritersFile(file: string): Promise<Map<string, Writer>> {
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_FILE) throw new Error(`larger than ${MAX_FILE} bytes`);
    text = bytes.toString('utf8');
  } catch (err) {
    throw new BundlemirrorError('E_CONFIG', `cannot read the LFS writers file ${file}: ${(err as Error).message}`, {
      hint: 'create it with one "name token" line per person allowed to upload LFS objects and take locks',
      cause: err,
    });
  }
  return parseWriters(text, file);
}
