import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { freshWhenEmptied, withoutKey } from '../base/young-tables.js';
import { DeliveryWindows } from '../actors/delivery-window.js';

describe('young tables (issue 13: no old-space garbage from tables that empty per message)', () => {
  it('withoutKey deletes in place, and drops the table instead of deleting its last entry', () => {
    const m = new Map([['a', 1], ['b', 2]]);
    expect(withoutKey(m, 'a')).toBe(m);
    expect([...m.keys()]).toEqual(['b']);
    expect(withoutKey(m, 'x')).toBe(m); // absent: nothing changes
    expect(withoutKey(m, 'b')).toBeUndefined();
    expect(m.size).toBe(1); // left as it was: no shrinking rehash
    const s = new Set(['only']);
    expect(withoutKey(s, 'other')).toBe(s);
    expect(withoutKey(s, 'only')).toBeUndefined();
  });

  it('freshWhenEmptied gives a new empty table of the same kind for the last entry', () => {
    const m = new Map([['a', 1]]);
    const m2 = freshWhenEmptied(m, 'a');
    expect(m2).not.toBe(m);
    expect(m2).toBeInstanceOf(Map);
    expect(m2.size).toBe(0);
    const s = new Set(['a', 'b']);
    expect(freshWhenEmptied(s, 'a')).toBe(s);
    const s2 = freshWhenEmptied(s, 'b');
    expect(s2).toBeInstanceOf(Set);
    expect(s2).not.toBe(s);
    expect(s2.size).toBe(0);
  });

  it('both keep the contents a plain Map would have, over any run of sets and deletes', () => {
    const op = fc.record({ del: fc.boolean(), key: fc.integer({ min: 0, max: 5 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const plain = new Map<number, number>();
        let dropped: Map<number, number> | undefined;
        let fresh = new Map<number, number>();
        ops.forEach(({ del, key }, i) => {
          if (del) {
            plain.delete(key);
            if (dropped !== undefined) dropped = withoutKey(dropped, key);
            fresh = freshWhenEmptied(fresh, key);
          } else {
            plain.set(key, i);
            (dropped ??= new Map()).set(key, i);
            fresh.set(key, i);
          }
        });
        const want = [...plain.entries()];
        expect([...(dropped ?? new Map()).entries()]).toEqual(want);
        expect([...fresh.entries()]).toEqual(want);
        expect(dropped === undefined || dropped.size > 0).toBe(true); // an emptied table was dropped
      }),
    );
  });

  it('a delivery window forgets an idle session whole and starts it afresh', () => {
    const w = new DeliveryWindows<string>(1);
    expect(w.admit('s1', 'a')).toBe(true);
    expect(w.admit('s1', 'b')).toBe(false); // waits: window of 1
    expect(w.release('s1')).toEqual(['b']);
    expect(w.inFlight('s1')).toBe(1);
    expect(w.release('s1')).toEqual([]);
    expect(w.inFlight('s1')).toBe(0);
    expect(w.admit('s1', 'c')).toBe(true);
    expect(w.close('s1')).toEqual([]);
    expect(w.inFlight('s1')).toBe(0);
  });
});
