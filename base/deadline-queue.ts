import type { Clock, Timer } from './clock.js';

/**
 * A pending deadline's handle (its sequence number in the queue), to pass to `cancel`. A plain number, not an
 * object: a deadline lives for the whole delay (the ack timeout, seconds), long enough to be promoted out of the
 * young generation, so an object per deadline became old-space garbage per delivery (issue 13).
 */
export type Deadline = number;

export class DeadlineQueue<T> {
  private items: (T | undefined)[] = [];
  /** Due times (epoch ms) of `items`, index for index. */
  private dues: number[] = [];
  private head = 0;
  /** The handle of `items[0]`: handles count every deadline ever added, so compaction never changes one. */
  private base = 0;
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

  add(item: T): Deadline {
    const due = this.clock.now() + this.delayMs;
    this.items.push(item);
    this.dues.push(due);
    this.live++;
    if (this.timer === undefined && !this.firing) this.arm(due);
    return this.base + this.items.length - 1;
  }

  /** Cancels a deadline; one that fired, was cancelled or was stopped already is ignored. */
  cancel(d: Deadline): void {
    const i = d - this.base;
    if (i < this.head || i >= this.items.length || this.items[i] === undefined) return;
    this.items[i] = undefined;
    this.live--;
  }

  /** Cancels everything and stops the timer. */
  stop(): void {
    this.base += this.items.length;
    this.items = [];
    this.dues = [];
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
      while (this.head < this.items.length) {
        const item = this.items[this.head];
        if (item !== undefined && this.dues[this.head] > horizon) break;
        this.items[this.head++] = undefined;
        if (item === undefined) continue;
        this.live--;
        this.onDue(item);
      }
    } finally {
      this.firing = false;
    }
    if (this.head === this.items.length) {
      this.base += this.items.length;
      this.items.length = 0;
      this.dues.length = 0;
      this.head = 0;
    } else {
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        const n = this.items.length - this.head;
        this.items.copyWithin(0, this.head);
        this.dues.copyWithin(0, this.head);
        this.items.length = this.dues.length = n;
        this.base += this.head;
        this.head = 0;
      }
      if (this.timer === undefined) this.arm(this.dues[this.head]);
    }
  }
}
