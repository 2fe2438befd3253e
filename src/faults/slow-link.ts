/**
 * The schedule of a slow link: one downstream capacity, in bytes per
 * second, shared by every connection of the fault proxy.
 *
 * Timers fire late (node's clock has millisecond steps, and a busy event
 * loop adds more), so a schedule that starts every slice at "now or when
 * the link is free, whichever is later" loses that lateness on every slice:
 * at 25 MB/s a 16 KiB slice lasts 0.66 ms, a timer at least 1 ms, and the
 * link ran at about half its rate. Here a link that fell behind its
 * schedule catches up in a burst of at most `burstMs` worth of bytes, so
 * over any stretch longer than that the mean rate is the one asked for;
 * an idle link banks no more than that burst.
 */
export class SlowLink {
  private freeAt = -Infinity;

  constructor(private readonly burstMs = 4) {}

  /** Books `bytes` on the link at time `now` (ms) at `rate` bytes/s; returns when the link has sent them (ms). */
  book(bytes: number, rate: number, now: number): number {
    this.freeAt = Math.max(this.freeAt, now - this.burstMs) + (bytes * 1000) / rate;
    return this.freeAt;
  }
}
