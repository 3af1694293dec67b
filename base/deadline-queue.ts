import type { Clock, Timer } from './clock.js';

/** A pending deadline; pass it to `cancel`. */
export interface Deadline<T> {
  /** Undefined once it fired or was cancelled. */
  item: T | undefined;
  readonly due: number;
}

/**
 * Many deadlines of one fixed delay (the ack timeout) on one clock timer (issue 13: one timer per delivery cost
 * 2-3 µs of node CPU per message). With a fixed delay, deadlines come due in the order they were added, so a FIFO
 * queue is enough: `add` appends, `cancel` only clears the entry (no search), and the single timer is armed for the
 * oldest live entry. When it fires, everything due within `resolutionMs` of now fires with it, so at most one timer
 * runs per `resolutionMs` however many deliveries are in flight; a deadline may thus fire up to `resolutionMs`
 * early, never late beyond the clock's own lateness.
 *
 * Memory: a cancelled entry stays in the queue until its due time passes (one small object each); the array is
 * compacted as the head moves on.
 */
export class DeadlineQueue<T> {
  private entries: Deadline<T>[] = [];
  private head = 0;
  private live = 0;
  private timer?: Timer;
  private firing = false;

  /**
   * `delayMs`: the delay of every deadline (ms); `onDue`: called once per deadline that was not cancelled, in order;
   * `resolutionMs`: deadlines due this close together share one timer firing (default 10 ms).
   */
  constructor(private readonly clock: Clock, private readonly delayMs: number, private readonly onDue: (item: T) => void, private readonly resolutionMs = 10) {}

  /** Deadlines neither fired nor cancelled. */
  get size(): number {
    return this.live;
  }

  add(item: T): Deadline<T> {
    const d: Deadline<T> = { item, due: this.clock.now() + this.delayMs };
    this.entries.push(d);
    this.live++;
    if (this.timer === undefined && !this.firing) this.arm(d.due);
    return d;
  }

  cancel(d: Deadline<T>): void {
    if (d.item === undefined) return;
    d.item = undefined;
    this.live--;
  }

  /** Cancels everything and stops the timer. */
  stop(): void {
    for (let i = this.head; i < this.entries.length; i++) this.entries[i].item = undefined;
    this.entries = [];
    this.head = 0;
    this.live = 0;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(due: number): void {
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, due - this.clock.now()));
    (this.timer as { unref?: () => void }).unref?.(); // deadlines never keep the process alive
  }

  private fire(): void {
    this.timer = undefined;
    const horizon = this.clock.now() + this.resolutionMs;
    this.firing = true; // deadlines added by onDue go to the tail; the timer is re-armed once, below
    try {
      while (this.head < this.entries.length) {
        const d = this.entries[this.head];
        if (d.item !== undefined && d.due > horizon) break;
        this.head++;
        const item = d.item;
        if (item === undefined) continue;
        d.item = undefined;
        this.live--;
        this.onDue(item);
      }
    } finally {
      this.firing = false;
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    if (this.head === this.entries.length) {
      this.entries = [];
      this.head = 0;
    } else if (this.timer === undefined) {
      this.arm(this.entries[this.head].due);
    }
  }
}
