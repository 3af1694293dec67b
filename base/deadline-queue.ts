import type { Clock, Timer } from './clock.js';

/**
 * A pending deadline's handle (its sequence number in the queue), to pass to `cancel`. A plain number, not an
 * object: a deadline lives for the whole delay (the ack timeout, seconds), long enough to be promoted out of the
 * young generation, so an object per deadline became old-space garbage per delivery (issue 13). Handles start at 0:
 * test a stored one with `!== undefined`, never for truthiness.
 */
export type Deadline = number;

/** Slots of a new queue's ring; it doubles when full and never shrinks. */
const INITIAL_SLOTS = 1024;

/**
 * Many deadlines of one fixed delay (the ack timeout) on one clock timer (issue 13: one timer per delivery cost
 * 2-3 µs of node CPU per message). With a fixed delay, deadlines come due in the order they were added, so a FIFO
 * queue is enough: `add` appends, `cancel` only clears the entry (no search), and the single timer is armed for the
 * oldest live entry. When it fires, everything due within `resolutionMs` of now fires with it, so at most one timer
 * runs per `resolutionMs` however many deliveries are in flight; a deadline may thus fire up to `resolutionMs`
 * early, never late beyond the clock's own lateness.
 *
 * Memory: a ring of item slots and due times (a Float64Array, epoch ms), doubled when full: once it has the size the
 * load needs, adding and cancelling allocate nothing (issue 13: a growing array here, reallocated as deadlines came
 * and went, was ~50 bytes of old-space garbage per delivery). A cancelled entry keeps its slot until its due time.
 */
export class DeadlineQueue<T> {
  private items: (T | undefined)[] = new Array<T | undefined>(INITIAL_SLOTS).fill(undefined);
  private dues = new Float64Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  /** Handle of the oldest entry still in the ring; handles count every deadline ever added. */
  private first = 0;
  /** Handle the next `add` returns: the ring holds `first` .. `next - 1`. */
  private next = 0;
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
    if (this.next - this.first > this.mask) this.grow();
    const due = this.clock.now() + this.delayMs;
    const handle = this.next++;
    this.items[handle & this.mask] = item;
    this.dues[handle & this.mask] = due;
    this.live++;
    if (this.timer === undefined && !this.firing) this.arm(due);
    return handle;
  }

  /** Cancels a deadline; one that fired, was cancelled or was stopped already is ignored. */
  cancel(d: Deadline): void {
    if (d < this.first || d >= this.next) return;
    const slot = d & this.mask;
    if (this.items[slot] === undefined) return;
    this.items[slot] = undefined;
    this.live--;
  }

  /** Cancels everything and stops the timer; handles given out before are ignored afterwards. */
  stop(): void {
    for (let h = this.first; h < this.next; h++) this.items[h & this.mask] = undefined;
    this.first = this.next;
    this.live = 0;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private grow(): void {
    const slots = (this.mask + 1) * 2;
    const items = new Array<T | undefined>(slots).fill(undefined);
    const dues = new Float64Array(slots);
    const mask = slots - 1;
    for (let h = this.first; h < this.next; h++) {
      items[h & mask] = this.items[h & this.mask];
      dues[h & mask] = this.dues[h & this.mask];
    }
    this.items = items;
    this.dues = dues;
    this.mask = mask;
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
      while (this.first < this.next) {
        const slot = this.first & this.mask;
        const item = this.items[slot];
        if (item !== undefined && this.dues[slot] > horizon) break;
        this.items[slot] = undefined;
        this.first++;
        if (item === undefined) continue;
        this.live--;
        this.onDue(item);
      }
    } finally {
      this.firing = false;
    }
    if (this.first < this.next && this.timer === undefined) this.arm(this.dues[this.first & this.mask]);
  }
}
