import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hashId } from '../base/id-hash.js';
import { BoundedIdSet } from '../store/bounded-id-set.js';

/** The rules over an array (a scan per call): insertion order, an id added again keeps its place, oldest out first. */
function model(max: number) {
  let ids: string[] = [];
  const trim = (): void => void (ids.length > max && ids.splice(0, ids.length - max));
  const insert = (id: string): boolean => (ids.includes(id) ? false : (ids.push(id), true));
  return {
    get ids() {
      return ids;
    },
    add(id: string): boolean {
      const added = insert(id);
      trim();
      return added;
    },
    addAll(list: string[]): void {
      list.forEach(insert);
      trim();
    },
    delete(id: string): boolean {
      const before = ids.length;
      ids = ids.filter((x) => x !== id);
      return ids.length < before;
    },
  };
}

/** Two different ids with the same hash (32 bits: about a hundred thousand ids give a pair). */
function collidingPair(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const id = `c${i}`;
    const other = seen.get(hashId(id));
    if (other !== undefined) return [other, id];
    seen.set(hashId(id), id);
  }
}

describe('BoundedIdSet', () => {
  it('keeps ids in insertion order, each once, forgetting the oldest past its bound', () => {
    const s = new BoundedIdSet(3);
    expect([s.add('a'), s.add('b'), s.add('a'), s.add('c')]).toEqual([true, true, false, true]);
    expect([...s]).toEqual(['a', 'b', 'c']);
    s.add('d');
    expect([...s]).toEqual(['b', 'c', 'd']);
    expect([s.has('a'), s.has('b'), s.size]).toEqual([false, true, 3]);
    expect([s.delete('c'), s.delete('c'), s.delete('zz')]).toEqual([true, false, false]);
    expect([...s]).toEqual(['b', 'd']);
    s.addAll(['b', 'e', 'f']); // b was the oldest: it keeps its place, then the bound cuts it
    expect([...s]).toEqual(['d', 'e', 'f']);
    expect(() => new BoundedIdSet(0)).toThrow(RangeError);
  });

  it('tells apart ids whose hashes are equal', () => {
    const [a, b] = collidingPair();
    expect(hashId(a)).toBe(hashId(b));
    const s = new BoundedIdSet(10);
    s.add(a);
    expect(s.has(b)).toBe(false);
    expect(s.add(b)).toBe(true);
    expect(s.delete(a)).toBe(true);
    expect([s.has(a), s.has(b), [...s]]).toEqual([false, true, [b]]);
    s.add('x');
    s.add(a);
    expect([...s]).toEqual([b, 'x', a]);
  });

  it('agrees with the array rules over any sequence of adds, batches and deletes, across many rebuilds', () => {
    // Few distinct ids against small bounds: adds of ids already there, deletes in the middle and of the oldest,
    // rebuilds in the same arrays and into larger or smaller ones, all come often.
    const id = fc.integer({ min: 0, max: 60 }).map((n) => `m${n}`);
    const step = fc.oneof(
      { arbitrary: id.map((x) => ({ add: x })), weight: 5 },
      { arbitrary: id.map((x) => ({ delete: x })), weight: 3 },
      { arbitrary: fc.array(id, { maxLength: 12 }).map((xs) => ({ addAll: xs })), weight: 1 },
      { arbitrary: id.map((x) => ({ has: x })), weight: 2 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(step, { minLength: 50, maxLength: 600 }), (max, steps) => {
        const s = new BoundedIdSet(max);
        const m = model(max);
        for (const st of steps) {
          if ('add' in st) expect(s.add(st.add)).toBe(m.add(st.add));
          else if ('delete' in st) expect(s.delete(st.delete)).toBe(m.delete(st.delete));
          else if ('addAll' in st) {
            s.addAll(st.addAll);
            m.addAll(st.addAll);
          } else expect(s.has(st.has)).toBe(m.ids.includes(st.has));
          expect(s.size).toBe(m.ids.length);
        }
        expect([...s]).toEqual(m.ids);
        expect([...new BoundedIdSet(max, s)]).toEqual(m.ids);
      }),
      { numRuns: 300 },
    );
  });

  it('stays small and bounded while ids stream through it', () => {
    const s = new BoundedIdSet(1000);
    for (let i = 0; i < 50_000; i++) {
      s.add(`id-${i}`);
      if (i % 7 === 0) s.delete(`id-${i - 3}`);
    }
    expect(s.size).toBe(1000);
    expect([...s].at(-1)).toBe('id-49999');
    // The positions and the table never grow past twice and four times the ids they hold, rounded up to a power of
    // two, whatever went through; at the bound a rebuild reuses its arrays.
    const inner = s as unknown as { ids: unknown[]; slots: Int32Array };
    expect(inner.ids.length).toBeLessThanOrEqual(2048);
    expect(inner.slots.length).toBeLessThanOrEqual(4096);
    const { ids, slots } = inner;
    for (let i = 0; i < 5000; i++) s.add(`more-${i}`);
    expect([inner.ids === ids, inner.slots === slots]).toEqual([true, true]);
    // Emptied by deletes, then used again: it shrinks back.
    for (const id of [...s]) s.delete(id);
    expect(s.size).toBe(0);
    s.add('again');
    expect([...s]).toEqual(['again']);
    expect(inner.ids.length).toBeLessThanOrEqual(8);
  });
});
