/**
 * A download in progress, on disk: `<partialDir>/<sha256>.part`, named by the
 * content it must end up holding so that any later run (another process,
 * after a crash or a kill) finds it and continues from its size. Next to it,
 * `<sha256>.part.etag` keeps the If-Range validator of the response that
 * started it. The file never grows past the expected size, and it only
 * becomes the destination file by rename once its sha256 is right.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BundlemirrorError, isDiskFullErrno } from '../errors.js';
import { fsyncDir, tempPathFor } from '../fs/atomic.js';
import { RunningHash } from './running-hash.js';

const PART_SUFFIX = '.part';
const VALIDATOR_SUFFIX = '.part.etag';

export function partialPathFor(partialDir: string, sha256: string): string {
  return join(partialDir, `${sha256}${PART_SUFFIX}`);
}

/** Wraps a filesystem failure; a full disk gets its own advice. */
export function diskError(err: unknown, what: string): BundlemirrorError {
  if (err instanceof BundlemirrorError) return err;
  const e = err as NodeJS.ErrnoException;
  const full = isDiskFullErrno(err);
  return new BundlemirrorError('E_DISK', `${what}: ${full ? 'disk full' : (e?.message ?? String(err))}`, {
    hint: full
      ? 'free some space; the next run resumes where this one stopped'
      : "check the permissions and health of the replica's filesystem",
    cause: err,
  });
}

/** True when `file` exists with exactly `size` bytes hashing to `sha256`. */
export async function holdsContent(file: string, size: number, sha256: string): Promise<boolean> {
  try {
    const st = await stat(file);
    if (!st.isFile() || st.size !== size) return false;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    return hash.digest('hex') === sha256;
  } catch {
    return false;
  }
}

export class PartialFile {
  readonly path: string;
  private readonly validatorPath: string;
  private sizeOnDisk: number;
  private readonly hasher: RunningHash;
  private closed = false;

  private constructor(
    private readonly fh: FileHandle,
    partialDir: string,
    readonly sha256: string,
    readonly expectedSize: number,
    initialSize: number,
  ) {
    this.path = partialPathFor(partialDir, sha256);
    this.validatorPath = join(partialDir, `${sha256}${VALIDATOR_SUFFIX}`);
    this.sizeOnDisk = initialSize;
    this.hasher = new RunningHash(
      async (buf, length, position) => (await this.fh.read(buf, 0, length, position)).bytesRead,
      () => this.sizeOnDisk,
    );
  }

  /** Opens (creating if needed) the partial for `sha256`; a partial larger than expected is garbage and is emptied. */
  static async open(partialDir: string, sha256: string, expectedSize: number): Promise<PartialFile> {
    const path = partialPathFor(partialDir, sha256);
    let fh: FileHandle;
    try {
      await mkdir(partialDir, { recursive: true });
      // O_RDWR|O_CREAT without O_APPEND: positional writes must land where we say; never through a symlink planted in its place
      fh = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW, 0o644);
    } catch (err) {
      throw diskError(err, `cannot open partial download ${path}`);
    }
    try {
      let size = (await fh.stat()).size;
      if (size > expectedSize) {
        await fh.truncate(0);
        size = 0;
      }
      return new PartialFile(fh, partialDir, sha256, expectedSize, size);
    } catch (err) {
      await fh.close().catch(() => {});
      throw diskError(err, `cannot read partial download ${path}`);
    }
  }

  /** Bytes on disk. */
  get size(): number {
    return this.sizeOnDisk;
  }

  /** Bytes read back from disk to hash them (a resumed prefix, or data written during that read). */
  get bytesReadBack(): number {
    return this.hasher.bytesReadBack;
  }

  /** Appends `bufs`; refuses to grow the file past the expected size. */
  async append(bufs: Buffer[]): Promise<void> {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    if (total === 0) return;
    if (this.sizeOnDisk + total > this.expectedSize) {
      throw new Error(
        `internal: write of ${total} bytes at ${this.sizeOnDisk} would pass the expected size ${this.expectedSize}`,
      );
    }
    const position = this.sizeOnDisk;
    try {
      let done = 0;
      let rest = bufs;
      while (done < total) {
        const { bytesWritten } = await this.fh.writev(rest, position + done);
        if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
        done += bytesWritten;
        rest = skipBytes(rest, bytesWritten);
      }
    } catch (err) {
      // What reached the disk is unknown; take the size from the file and
      // let the hash re-read it rather than trust the running state.
      await this.resync();
      throw diskError(err, `cannot write partial download ${this.path}`);
    }
    this.sizeOnDisk = position + total;
    this.hasher.written(bufs, position);
  }

  /**
   * Begins hashing the bytes already on disk, in the background: started
   * with the request, it overlaps the round trip. If the answer turns out
   * to be a full 200, discard() cancels it.
   */
  startHashingPrefix(): void {
    this.hasher.startCatchUp();
  }

  /**
   * Waits until the bytes on disk are hashed. Called before appending a
   * resumed range, so that new bytes are hashed from memory as they are
   * written and nothing is read back twice; meanwhile the response waits in
   * the socket (TCP flow control holds the sender).
   */
  async prefixHashed(signal?: AbortSignal): Promise<void> {
    this.hasher.startCatchUp();
    if (!signal) return this.hasher.settle();
    signal.throwIfAborted();
    // An abort must not wait for gigabytes of hashing; close() stops the read.
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.hasher.settle(), aborted]);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** Empties the partial: the bytes in it belong to another version, or are wrong. */
  async discard(): Promise<void> {
    this.hasher.reset();
    try {
      await this.fh.truncate(0);
    } catch (err) {
      throw diskError(err, `cannot truncate partial download ${this.path}`);
    }
    this.sizeOnDisk = 0;
    await this.writeValidator(undefined);
  }

  /** sha256 (hex) of the whole file. */
  async digest(): Promise<string> {
    try {
      return await this.hasher.digest(this.sizeOnDisk);
    } catch (err) {
      throw diskError(err, `cannot hash partial download ${this.path}`);
    }
  }

  async readValidator(): Promise<string | undefined> {
    try {
      const v = (await readFile(this.validatorPath, 'utf8')).trim();
      // It goes into a request header: printable ASCII only.
      return /^[\x20-\x7e]{1,1024}$/.test(v) ? v : undefined;
    } catch {
      return undefined;
    }
  }

  /** Records (or forgets) the validator of the response this partial's bytes came from. */
  async writeValidator(validator: string | undefined): Promise<void> {
    try {
      if (validator === undefined) await rm(this.validatorPath, { force: true });
      else
        await writeFile(this.validatorPath, validator + '\n', {
          flag: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW,
        });
    } catch (err) {
      throw diskError(err, `cannot record the validator of ${this.path}`);
    }
  }

  /**
   * Makes the verified partial the destination file: fsync, then rename
   * (atomic, same filesystem), or copy into a temp file next to `dest` and
   * rename that when `dest` is on another filesystem.
   */
  async commitTo(dest: string): Promise<void> {
    try {
      await this.fh.sync();
      await this.close();
      await mkdir(dirname(dest), { recursive: true });
      try {
        await rename(this.path, dest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        await copyAcrossFilesystems(this.path, dest);
        await rm(this.path, { force: true });
      }
      await fsyncDir(dirname(dest));
      await rm(this.validatorPath, { force: true });
    } catch (err) {
      throw diskError(err, `cannot move the verified download into ${dest}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.hasher.quiesce();
    await this.fh.close();
  }

  /** Closes and deletes the partial and its validator. */
  async remove(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.path, { force: true });
    await rm(this.validatorPath, { force: true });
  }

  private async resync(): Promise<void> {
    this.hasher.reset();
    try {
      this.sizeOnDisk = Math.min((await this.fh.stat()).size, this.expectedSize);
      await this.fh.truncate(this.sizeOnDisk);
    } catch {
      /* the write error is what the caller reports */
    }
  }
}

async function copyAcrossFilesystems(src: string, dest: string): Promise<void> {
  const tmp = tempPathFor(dest);
  try {
    await copyFile(src, tmp);
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function skipBytes(bufs: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
