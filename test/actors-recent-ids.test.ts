import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecentIds } from '../actors/history.js';

/** What RecentIds answered before issue 13 made it a table over typed arrays: a ring plus a Set. */
class ReferenceRecentIds {
  private readonly ids: string[] = [];
  private readonly set = new Set<string>();
  private next = 0;
  constructor(private readonly capacity: number) {}
  has(id: string): boolean {
    return this.set.has(id);
  }
  add(id: string): void {
    if (this.set.has(id)) return;
    if (this.ids.length < this.capacity) this.ids.push(id);
    else {
      this.set.delete(this.ids[this.next]);
      this.ids[this.next] = id;
      this.next = (this.next + 1) % this.capacity;
    }
    this.set.add(id);
  }
}

describe('RecentIds (a redelivered route is settled, not delivered again)', () => {
  it('answers as a ring plus a Set would, over any run of adds, across growth and eviction', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 600 }), (capacity, adds) => {
        const recent = new RecentIds(capacity);
        const ref = new ReferenceRecentIds(capacity);
        for (const n of adds) {
          recent.add(`msg-${n}`);
          ref.add(`msg-${n}`);
        }
        for (let n = 0; n <= 120; n++) expect(recent.has(`msg-${n}`)).toBe(ref.has(`msg-${n}`));
      }),
      { numRuns: 300 },
    );
  });

  it('remembers exactly the last 256 ids by default', () => {
    const recent = new RecentIds();
    expect(recent.has('m-0')).toBe(false);
    for (let i = 0; i < 1000; i++) recent.add(`m-${i}`);
    expect(recent.has('m-743')).toBe(false);
    expect(recent.has('m-744')).toBe(true);
    expect(recent.has('m-999')).toBe(true);
    expect(recent.has('other')).toBe(false);
  });
});
