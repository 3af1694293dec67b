import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../base/clock.js';
import { DeadlineQueue } from '../base/deadline-queue.js';

describe('DeadlineQueue (issue 13: one timer for every ack timeout)', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('fires each deadline once, in order, after the delay, and never a cancelled one', () => {
    const fired: string[] = [];
    const q = new DeadlineQueue<string>(systemClock, 1000, (x) => fired.push(x), 10);
    const a = q.add('a');
    vi.advanceTimersByTime(100);
    q.add('b');
    q.add('c');
    q.cancel(a);
    expect(q.size).toBe(2);
    vi.advanceTimersByTime(899);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1); // a's due time: a is cancelled, b and c are 100 ms later
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['b', 'c']);
    expect(q.size).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['b', 'c']);
  });

  it('uses one clock timer for many deadlines and coalesces those within the resolution', () => {
    const fired: number[] = [];
    const q = new DeadlineQueue<number>(systemClock, 500, (x) => fired.push(x), 10);
    for (let i = 0; i < 1000; i++) q.add(i);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(5);
    for (let i = 1000; i < 1005; i++) q.add(i); // due 5 ms after the first batch: fires with it
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(495);
    expect(fired).toHaveLength(1005);
    expect(fired).toEqual(Array.from({ length: 1005 }, (_, i) => i));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('re-arms for the oldest live deadline, also for ones added while firing', () => {
    const fired: string[] = [];
    const q: DeadlineQueue<string> = new DeadlineQueue<string>(systemClock, 100, (x) => {
      fired.push(x);
      if (x === 'first') q.add('again'); // an ack timeout that leads to a redelivery with its own timeout
    }, 1);
    q.add('first');
    vi.advanceTimersByTime(50);
    q.add('second');
    vi.advanceTimersByTime(50);
    expect(fired).toEqual(['first']);
    vi.advanceTimersByTime(50);
    expect(fired).toEqual(['first', 'second']);
    vi.advanceTimersByTime(50);
    expect(fired).toEqual(['first', 'second', 'again']);
  });

  it('stop() cancels everything and clears its timer', () => {
    const fired: string[] = [];
    const q = new DeadlineQueue<string>(systemClock, 100, (x) => fired.push(x));
    q.add('a');
    q.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual([]);
    expect(q.size).toBe(0);
  });

  it('keeps every handle valid across compaction, firing and stop (handles are sequence numbers, not objects)', () => {
    const fired: number[] = [];
    const q = new DeadlineQueue<number>(systemClock, 100, (x) => fired.push(x), 1);
    // 3,000 deadlines 1 ms apart: the head passes 1,024 and the arrays are compacted while later ones are pending.
    const handles: number[] = [];
    for (let i = 0; i < 3000; i++) {
      handles.push(q.add(i));
      vi.advanceTimersByTime(1);
    }
    // Cancel every third of the last 50 (pending: due 100 ms after their add), and once more each: a second cancel is ignored.
    const pending = q.size;
    expect(pending).toBeGreaterThan(90);
    const cancelled = new Set<number>();
    for (let i = 2950; i < 3000; i += 3) {
      q.cancel(handles[i]);
      q.cancel(handles[i]);
      cancelled.add(i);
    }
    // Cancelling handles that fired long ago changes nothing.
    q.cancel(handles[0]);
    q.cancel(handles[1500]);
    expect(q.size).toBe(pending - cancelled.size);
    vi.advanceTimersByTime(200);
    const want = Array.from({ length: 3000 }, (_, i) => i).filter((i) => !cancelled.has(i));
    expect(fired).toEqual(want);
    expect(q.size).toBe(0);
    // After stop, an old handle never cancels a new deadline that happens to sit at the same place.
    const before = q.add(-1);
    q.stop();
    const after = q.add(-2);
    q.cancel(before);
    expect(q.size).toBe(1);
    vi.advanceTimersByTime(200);
    expect(fired.at(-1)).toBe(-2);
    expect(after).not.toBe(before);
  });

  it('grows its ring when more deadlines are pending than it has slots, keeping order and handles', () => {
    const fired: number[] = [];
    const q = new DeadlineQueue<number>(systemClock, 1000, (x) => fired.push(x), 1);
    const handles: number[] = [];
    // 5,000 pending at once (the ring starts at 1,024 slots), added after the ring already wrapped once.
    for (let i = 0; i < 1500; i++) q.cancel(q.add(-1));
    for (let i = 0; i < 5000; i++) handles.push(q.add(i));
    for (let i = 0; i < 5000; i += 7) q.cancel(handles[i]);
    expect(q.size).toBe(5000 - Math.ceil(5000 / 7));
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual(Array.from({ length: 5000 }, (_, i) => i).filter((i) => i % 7 !== 0));
    expect(q.size).toBe(0);
  });
});
