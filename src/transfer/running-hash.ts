/**
 * The sha256 of a file that is being appended to, computed so that no byte
 * is read twice: bytes are hashed from memory as they are written, and the
 * part already on disk (a partial left by an earlier run) is read once, in
 * the background. The downloader waits for that read before appending (see
 * PartialFile.prefixHashed); should bytes be appended while it runs anyway
 * (after a write error, say), the same loop reads them back from disk
 * before hashing switches to memory again, so the digest is always right.
 */
import { createHash, type Hash } from 'node:crypto';

const READ_CHUNK = 1 << 20;

/** Positional read: fills `buf[0, length)` from `position`, returns bytes read. */
export type ReadAt = (buf: Buffer, length: number, position: number) => Promise<number>;

export class RunningHash {
  private hash: Hash = createHash('sha256');
  private hashedUpTo = 0;
  /** Bumped by reset(): a catch-up read from an older generation must not touch the new hash. */
  private generation = 0;
  private catchingUp = false;
  /** Set by quiesce(): the file is about to be closed, no more reads. */
  private stopped = false;
  private catchUpDone: Promise<void> = Promise.resolve();
  private catchUpError: unknown = undefined;
  /** Every read started, of any generation: the file must not be closed under one. */
  private allReads: Promise<unknown> = Promise.resolve();
  /** Bytes re-read from disk, for tests and benchmarks. */
  bytesReadBack = 0;

  constructor(
    private readonly readAt: ReadAt,
    /** How many bytes the file holds right now (only ever grows between resets). */
    private readonly sizeOnDisk: () => number,
  ) {}

  /** Call after `bufs` were written at `position`, synchronously with the size update. */
  written(bufs: readonly Buffer[], position: number): void {
    if (!this.catchingUp && position === this.hashedUpTo) {
      for (const b of bufs) this.hash.update(b);
      this.hashedUpTo += bufs.reduce((n, b) => n + b.length, 0);
      return;
    }
    // Either the catch-up loop is running (it will read these bytes back), or
    // the prefix was never hashed: start reading it.
    this.startCatchUp();
  }

  /** Starts hashing what is already on disk (a resumed partial), without blocking the caller. */
  startCatchUp(): void {
    if (this.stopped || this.catchingUp || this.hashedUpTo >= this.sizeOnDisk()) return;
    const gen = this.generation;
    this.catchingUp = true;
    this.catchUpError = undefined;
    this.catchUpDone = this.catchUp(gen).catch((err: unknown) => {
      if (gen === this.generation) {
        this.catchingUp = false;
        this.catchUpError = err;
      }
    });
    this.allReads = Promise.all([this.allReads, this.catchUpDone]);
  }

  private async catchUp(gen: number): Promise<void> {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      const target = this.sizeOnDisk();
      if (this.hashedUpTo >= target) {
        // Cleared in the same tick as the check, so the next written() sees
        // an idle catch-up and hashes from memory.
        this.catchingUp = false;
        return;
      }
      const n = await this.readAt(buf, Math.min(READ_CHUNK, target - this.hashedUpTo), this.hashedUpTo);
      if (gen !== this.generation) return;
      if (n <= 0) throw new Error(`the file ended at ${this.hashedUpTo} bytes while ${target} were expected`);
      this.hash.update(buf.subarray(0, n));
      this.hashedUpTo += n;
      this.bytesReadBack += n;
    }
  }

  /** The file was truncated to zero. */
  reset(): void {
    this.generation += 1;
    this.stopped = false;
    this.hash = createHash('sha256');
    this.hashedUpTo = 0;
    this.catchingUp = false;
    this.catchUpError = undefined;
    this.catchUpDone = Promise.resolve();
  }

  /** Waits for the current background read to finish (or fail: digest() reports it). */
  async settle(): Promise<void> {
    await this.catchUpDone;
  }

  /**
   * Stops any background read (after its current chunk) and waits for every
   * read ever started, so the file can be closed. The hash is unusable
   * afterwards until reset().
   */
  async quiesce(): Promise<void> {
    this.generation += 1;
    this.catchingUp = false;
    this.stopped = true;
    await this.allReads;
  }

  /** Hex sha256 of the first `size` bytes on disk. */
  async digest(size: number): Promise<string> {
    if (this.stopped) throw new Error('the file was closed before it was hashed');
    await this.catchUpDone;
    if (this.hashedUpTo < size) {
      this.startCatchUp();
      await this.catchUpDone;
    }
    if (this.catchUpError !== undefined) throw this.catchUpError;
    if (this.hashedUpTo !== size) throw new Error(`hashed ${this.hashedUpTo} bytes of a ${size}-byte file`);
    return this.hash.copy().digest('hex');
  }
}
