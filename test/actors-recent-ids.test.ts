import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../actors/history.js';

/** What RecentIds answers, the simple way: a ring of ids plus a map of each id's acceptedAt. */
class ReferenceRecentIds {
  private readonly ids: string[] = [];
  private readonly stamps = new Map<string, number>();
  private next = 0;
  constructor(private readonly capacity: number) {}
  has(id: string, at: number): boolean {
    return this.stamps.get(id) === at;
  }
  add(id: string, at: number): void {
    if (this.stamps.has(id)) return void this.stamps.set(id, at);
    if (this.ids.length < this.capacity) this.ids.push(id);
    else {
      this.stamps.delete(this.ids[this.next]);
      this.ids[this.next] = id;
      this.next = (this.next + 1) % this.capacity;
    }
    this.stamps.set(id, at);
  }
}

/** An acceptedAt, epoch ms (past 2^32: the stamps are doubles). */
const AT = 1_800_000_000_000;

describe('RecentIds (a redelivered route is settled, not delivered again)', () => {
  it('answers as a ring plus a Set would, over any run of adds, across growth and eviction', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 2 })), { maxLength: 600 }), (capacity, adds) => {
        const recent = new RecentIds(capacity);
        const ref = new ReferenceRecentIds(capacity);
        for (const [n, at] of adds) {
          recent.add(`msg-${n}`, AT + at);
          ref.add(`msg-${n}`, AT + at);
        }
        for (let n = 0; n <= 120; n++) for (let at = 0; at <= 2; at++) expect(recent.has(`msg-${n}`, AT + at)).toBe(ref.has(`msg-${n}`, AT + at));
      }),
      { numRuns: 300 },
    );
  });

  it('remembers exactly the last 256 ids by default', () => {
    const recent = new RecentIds();
    expect(recent.has('m-0', AT)).toBe(false);
    for (let i = 0; i < 1000; i++) recent.add(`m-${i}`, AT);
    expect(recent.has('m-743', AT)).toBe(false);
    expect(recent.has('m-744', AT)).toBe(true);
    expect(recent.has('m-999', AT)).toBe(true);
    expect(recent.has('m-999', AT + 1)).toBe(false); // the same id accepted anew
    expect(recent.has('other', AT)).toBe(false);
  });
});
