import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { emptyReadState, fromRecord, markDelivered, markRead, MAX_READ_IDS_REMEMBERED, MAX_UNREAD_IDS, toRecord, unreadCount } from '../store/read-state.js';

/** The rules as first written, over arrays (a scan per delivery): the sets must give the same lists in the same order. */
function model() {
  const s = { unread: [] as string[], read: [] as string[] };
  return {
    s,
    delivered(id: string): boolean {
      if (s.read.includes(id) || s.unread.includes(id)) return false;
      s.unread.push(id);
      if (s.unread.length > MAX_UNREAD_IDS) s.unread.splice(0, s.unread.length - MAX_UNREAD_IDS);
      return true;
    },
    read(ids: string[]): void {
      const gone = new Set(ids);
      s.unread = s.unread.filter((id) => !gone.has(id));
      for (const id of gone) if (!s.read.includes(id)) s.read.push(id);
      if (s.read.length > MAX_READ_IDS_REMEMBERED) s.read.splice(0, s.read.length - MAX_READ_IDS_REMEMBERED);
    },
  };
}

describe('read state (section 4, read sync)', () => {
  it('counts a delivery once, not after its read, and forgets the oldest unread past the cap', () => {
    const s = emptyReadState();
    expect(markDelivered(s, 'a')).toBe(true);
    expect(markDelivered(s, 'a')).toBe(false);
    markRead(s, ['b']);
    expect(markDelivered(s, 'b')).toBe(false); // read before its delivery: never unread
    for (let i = 0; i < MAX_UNREAD_IDS + 5; i++) markDelivered(s, `m${i}`);
    expect(unreadCount(s)).toBe(MAX_UNREAD_IDS);
    expect([...s.unread][0]).toBe('m5');
    markRead(s, ['m5', 'm6']);
    expect(unreadCount(s)).toBe(MAX_UNREAD_IDS - 2);
  });

  it('reads back what it stores, oldest first, with the bounds applied to a larger record', () => {
    const s = fromRecord({ unread: ['x', 'y'], read: ['r'] });
    expect(toRecord(s)).toEqual({ unread: ['x', 'y'], read: ['r'] });
    const big = fromRecord({ unread: Array.from({ length: MAX_UNREAD_IDS + 3 }, (_, i) => `u${i}`), read: [] });
    expect(big.unread.size).toBe(MAX_UNREAD_IDS);
    expect(toRecord(big).unread[0]).toBe('u3');
  });

  it('ends every sequence of deliveries and reads in the state the array rules give', () => {
    // Mostly deliveries over more ids than the unread bound, so sequences cross both bounds and trim again after
    // reads removed ids the trim would have reached (the trim keeps its place in each set between calls).
    const id = fc.integer({ min: 0, max: 2500 }).map((n) => `m${n}`);
    const step = fc.oneof(
      { arbitrary: id.map((d) => ({ delivered: d })), weight: 4 },
      { arbitrary: fc.array(id, { maxLength: 40 }).map((ids) => ({ read: ids })), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1500, maxLength: 3000 }), (steps) => {
        const s = emptyReadState();
        const m = model();
        for (const st of steps) {
          if ('delivered' in st) expect(markDelivered(s, st.delivered)).toBe(m.delivered(st.delivered));
          else {
            markRead(s, st.read);
            m.read(st.read);
          }
        }
        expect(toRecord(s)).toEqual(m.s);
      }),
      { numRuns: 40 },
    );
  });
});
