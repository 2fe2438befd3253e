/**
 * "No bytes for idleMs", counted in time this process was able to receive.
 *
 * Node runs expired timers before it polls sockets. After the event loop
 * was blocked (a long synchronous task elsewhere in the process, a CPU
 * starved by other processes), a plain timer fires first and calls a
 * transfer stalled while its bytes wait, unread, in the socket. So a round
 * whose timer fired late is not held against the link: the loop was away,
 * and the watch waits another full period. A round that fires on time is
 * judged only after one turn of I/O (setImmediate runs after the poll
 * phase), so bytes already waiting are seen first. A link that really stopped
 * is still reported: late rounds in a row are bounded.
 */

/** Late rounds in a row that are forgiven before a silent link is reported anyway. */
const MAX_LATE_ROUNDS = 5;

export class IdleWatch {
  private readonly timer: NodeJS.Timeout;
  private armedAt = Date.now();
  private activity = 0;
  private lateRounds = 0;
  private verdict: NodeJS.Immediate | undefined;
  private stopped = false;
  /** How late a timer may fire and still count as on time: ordinary scheduling jitter. */
  private readonly slackMs: number;

  /**
   * `onIdle` is called once, when nothing arrived for `idleMs`. While
   * `waiting()` is true the silence is ours (the reader paused the stream,
   * or it ended), and it is not counted.
   */
  constructor(
    private readonly idleMs: number,
    private readonly onIdle: () => void,
    private readonly waiting: () => boolean = () => false,
  ) {
    this.slackMs = Math.min(Math.max(idleMs / 10, 5), 1000);
    this.timer = setTimeout(() => this.fire(), idleMs);
  }

  /** Bytes arrived (or the reader resumed): the silence starts over. */
  touch(): void {
    if (this.stopped) return;
    this.activity += 1;
    this.lateRounds = 0;
    this.rearm();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.verdict) clearImmediate(this.verdict);
  }

  private rearm(): void {
    this.armedAt = Date.now();
    this.timer.refresh();
  }

  private fire(): void {
    if (this.stopped) return;
    const late = Date.now() - (this.armedAt + this.idleMs);
    if (this.waiting()) {
      this.rearm();
      return;
    }
    if (late > this.slackMs && this.lateRounds < MAX_LATE_ROUNDS) {
      this.lateRounds += 1;
      this.rearm();
      return;
    }
    const seen = this.activity;
    this.verdict = setImmediate(() => {
      this.verdict = undefined;
      if (this.stopped || this.activity !== seen) return;
      this.stopped = true;
      this.onIdle();
    });
  }
}
