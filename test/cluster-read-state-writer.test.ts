import { describe, expect, it } from 'vitest';
import { MAX_CHANGE_PUTS, READ_PUT_DELAY_MS, ReadStateWriter } from '../cluster/read-state-writer.js';
import { ManualClock } from './support/manual-clock.js';
import { applyChange, emptyReadState, fromRecord, markDelivered, markRead, toRecord, unmarkDelivered } from '../store/read-state.js';
import type { ReadChange, ReadState, ReadStateRecord } from '../store/types.js';

/**
 * A put that records what it was given (a copy, as an encoder would: the whole state, or the changes when the writer
 * sent only those) and is answered only when the test says so.
 */
function fakeStore() {
  const puts: { user: string; state: ReadStateRecord; changes?: ReadChange[]; base?: number; clearBase?: number; seq: number; resolve(): void; reject(e: Error): void }[] = [];
  const put = ({ user, state, changes, base, clearBase }: { user: string; state: ReadState; changes?: readonly ReadChange[]; base?: number; clearBase?: number }) =>
    new Promise<number>((resolve, reject) => {
      const seq = puts.length + 1; // the store's sequence of this put
      puts.push({ user, state: toRecord(state), changes: changes && [...changes], base, clearBase, seq, resolve: () => resolve(seq), reject });
    });
  return { puts, put };
}

/**
 * What a store that took these puts in order holds, read as the cluster's store reads it: the last whole state, and
 * the changes made on it (their `base` is its sequence), in order.
 */
function stored(puts: ReturnType<typeof fakeStore>['puts']): ReadStateRecord {
  const whole = puts.filter((p) => p.changes === undefined).at(-1);
  const s = whole ? fromRecord(whole.state) : emptyReadState();
  for (const p of puts) if (p.changes !== undefined && p.base === whole?.seq) for (const c of p.changes) applyChange(s, c);
  return toRecord(s);
}
/** 'W' for a put of the whole state, else the number of changes it carried. */
const kinds = (puts: ReturnType<typeof fakeStore>['puts']) => puts.map((p) => (p.changes === undefined ? 'W' : p.changes.length));
const rs = (unread: string[], read: string[] = []): ReadState => fromRecord({ unread, read });
/** Lets the writer's promise callbacks run (no time passes). */
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('ReadStateWriter', () => {
  it('one put in flight per user: 100 deliveries are 2 puts, the second with the latest state', async () => {
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { delayMs: 0 });
    const s = emptyReadState();
    for (let i = 0; i < 100; i++) {
      markDelivered(s, `m${i}`);
      await w.save('u', s, false); // a non-durable save never waits for a put
    }
    expect(puts.map((p) => p.state.unread.length)).toEqual([1]);
    expect(w.pending('u')?.unread.size).toBe(100);
    puts[0].resolve();
    await turn();
    expect(puts.map((p) => p.state.unread.length)).toEqual([1, 100]);
    const settled = w.settled();
    puts[1].resolve();
    await settled;
    expect(w.puts).toBe(2);
    expect(w.pending('u')).toBeUndefined();
  });

  it('at most maxInFlight puts across users; dirty users wait in order, those with a durable save first', async () => {
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { maxInFlight: 2, delayMs: 0 });
    for (const u of ['a', 'b', 'c', 'd']) void w.save(u, rs([u]), false);
    void w.save('c', rs(['c', 'c2']), false); // c still waits: no second entry for it
    const read = w.save('e', rs([], ['x']), true);
    expect(puts.map((p) => p.user)).toEqual(['a', 'b']);
    puts[0].resolve();
    await turn();
    expect(puts.map((p) => p.user)).toEqual(['a', 'b', 'e']); // the durable save jumps the queue
    puts[1].resolve();
    puts[2].resolve();
    await read;
    await turn();
    expect(puts.map((p) => p.user)).toEqual(['a', 'b', 'e', 'c', 'd']);
    expect(puts[3].state.unread).toEqual(['c', 'c2']);
  });

  it('a durable save behind a put in flight resolves with the put holding its state, and fails with it', async () => {
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { delayMs: 0 });
    const s = emptyReadState();
    markDelivered(s, 'a');
    void w.save('u', s, false);
    markRead(s, ['a']);
    let done = false;
    const read = w.save('u', s, true).then(() => (done = true));
    puts[0].resolve(); // the older state is stored: not enough for the read
    await turn();
    expect(done).toBe(false);
    expect(puts[1].state).toEqual({ unread: [], read: ['a'] });
    puts[1].resolve();
    await read;
    expect(done).toBe(true);

    const failing = w.save('u', rs([], ['a', 'b']), true);
    puts[2].reject(new Error('JetStream down'));
    await expect(failing).rejects.toThrow('JetStream down');
    await w.settled();
  });

  it('unread marks wait READ_PUT_DELAY_MS for more and go out as one put; a read does not wait', async () => {
    const clock = new ManualClock();
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { clock });
    const s = emptyReadState();
    for (let i = 0; i < 5; i++) {
      markDelivered(s, `m${i}`);
      await w.save('u', s, false);
      clock.advance(READ_PUT_DELAY_MS / 10);
    }
    expect(puts).toHaveLength(0);
    clock.advance(READ_PUT_DELAY_MS / 2); // the first mark's delay is over
    expect(puts.map((p) => p.state.unread.length)).toEqual([5]);
    // Marks during that put wait for its answer and then the delay again; a read goes out as soon as it can.
    markDelivered(s, 'm5');
    void w.save('u', s, false);
    puts[0].resolve();
    await turn();
    expect(puts).toHaveLength(1);
    const read = w.save('v', rs([], ['x']), true);
    expect(puts.map((p) => p.user)).toEqual(['u', 'v']);
    puts[1].resolve();
    await read;
    clock.advance(READ_PUT_DELAY_MS);
    expect(puts.map((p) => p.state.unread.length)).toEqual([5, 0, 6]);
    puts[2].resolve();
    await w.settled();
    expect(clock.pending).toBe(0);
  });

  it('flush sends what waits for the matching users now and resolves once it is stored; discard forgets it', async () => {
    const clock = new ManualClock();
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { clock });
    for (const u of ['a1', 'a2', 'b1']) void w.save(u, rs([u]), false);
    let flushed = false;
    const flushing = w.flush((u) => u.startsWith('a')).then(() => (flushed = true));
    await turn();
    expect(puts.map((p) => p.user)).toEqual(['a1', 'a2']);
    puts[0].resolve();
    await turn();
    expect(flushed).toBe(false);
    puts[1].resolve();
    await flushing;
    // b1 still waits out its delay; discarded (its partition's lease was lost), it is never put, and a durable save
    // of it rejects.
    const readB = w.save('b2', rs([], ['r']), true);
    void w.save('b1', rs(['b1', 'b1x']), false);
    expect(puts.map((p) => p.user)).toEqual(['a1', 'a2', 'b2']);
    w.discard((u) => u.startsWith('b'), new Error('moved'));
    clock.advance(READ_PUT_DELAY_MS * 2);
    expect(puts.map((p) => p.user)).toEqual(['a1', 'a2', 'b2']); // b2's put was in flight already: answered as it is
    expect(w.pending('b2')).toBeUndefined(); // not this node's state to serve any more
    puts[2].resolve();
    await readB;
    await w.settled();
  });

  it('a read of a user whose marks wait goes at once; discarded, it rejects', async () => {
    const clock = new ManualClock();
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { clock });
    void w.save('u', rs(['m1']), false);
    const read = w.save('u', rs([], ['m1']), true);
    expect(puts.map((p) => p.state)).toEqual([{ unread: [], read: ['m1'] }]);
    puts[0].resolve();
    await read;
    void w.save('u', rs(['m2']), false);
    const second = w.save('v', rs([], ['x']), true);
    w.discard(() => true, new Error('lease lost'));
    // v's read was already in flight: answered as its put is; u's mark waited and is gone.
    puts[1].resolve();
    await second;
    clock.advance(READ_PUT_DELAY_MS * 2);
    expect(puts.map((p) => p.user)).toEqual(['u', 'v']);
    const queued = new ReadStateWriter(put, { clock, maxInFlight: 1 });
    void queued.save('a', rs(['a']), true);
    const waiting = queued.save('b', rs([], ['b']), true); // queued behind a's put
    queued.discard((u) => u === 'b', new Error('lease lost'));
    await expect(waiting).rejects.toThrow('lease lost');
  });

  it('a flush ends when the users it waits on are discarded, and sends a user answered meanwhile at once', async () => {
    const clock = new ManualClock();
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { clock });
    void w.save('a', rs(['a1']), true); // in flight
    void w.save('a', rs(['a1', 'a2']), false); // a mark behind it
    let flushed = false;
    const flushing = w.flush((u) => u === 'a').then(() => (flushed = true));
    puts[0].resolve();
    await turn();
    expect(puts.map((p) => p.state.unread)).toEqual([['a1'], ['a1', 'a2']]); // not after READ_PUT_DELAY_MS: now
    void w.save('a', rs(['a1', 'a2', 'a3']), false); // dirty again behind that put
    w.discard((u) => u === 'a', new Error('lease lost')); // the lease went while the handoff flushed
    puts[1].resolve();
    await flushing;
    expect(flushed).toBe(true);
    expect(puts).toHaveLength(2);
  });

  it('sends no put for a user this node no longer owns when the put would go out', async () => {
    const clock = new ManualClock();
    const { puts, put } = fakeStore();
    const w = new ReadStateWriter(put, { clock });
    let owned = true;
    w.mayWrite = () => owned;
    void w.save('u', rs(['late']), false); // a mark made as the partition moves away
    owned = false;
    clock.advance(READ_PUT_DELAY_MS);
    const read = w.save('u', rs([], ['x']), true);
    await expect(read).rejects.toThrow('no longer owns');
    expect(puts).toHaveLength(0);
    await w.settled();
  });

  describe('puts of changes (issue 13: a busy user with 1,000 unread is not put whole at every mark)', () => {
    /** Marks `id` delivered in `s` and saves it with its change, as the mailbox does. */
    const deliver = (w: ReadStateWriter, s: ReadState, id: string) => {
      markDelivered(s, id);
      return w.save('u', s, false, { delivered: id });
    };

    it('the first put is whole; while the user stays busy the next carry only the changes since, in order; once quiet, the whole state', async () => {
      const clock = new ManualClock();
      const { puts, put } = fakeStore();
      const w = new ReadStateWriter(put, { clock });
      const s = emptyReadState();
      for (let i = 0; i < 3; i++) void deliver(w, s, `m${i}`);
      clock.advance(READ_PUT_DELAY_MS);
      void deliver(w, s, 'm3'); // while the first put is in flight
      markRead(s, ['m0']);
      const read = w.save('u', s, true, { read: ['m0'] });
      puts[0].resolve();
      await turn();
      expect(kinds(puts)).toEqual(['W', 2]); // the read goes at once, with the mark before it
      expect(puts[1].changes).toEqual([{ delivered: 'm3' }, { read: ['m0'] }]);
      puts[1].resolve();
      await read;
      await turn();
      void deliver(w, s, 'm4');
      clock.advance(READ_PUT_DELAY_MS);
      expect(kinds(puts)).toEqual(['W', 2, 1]);
      puts[2].resolve();
      await turn();
      expect(kinds(puts)).toEqual(['W', 2, 1]); // quiet only once the delay passes with no new change
      clock.advance(READ_PUT_DELAY_MS);
      expect(kinds(puts)).toEqual(['W', 2, 1, 'W']);
      expect(puts[3].state).toEqual(toRecord(s));
      puts[3].resolve();
      await w.settled();
      expect(stored(puts)).toEqual(toRecord(s));
      expect(w.pending('u')).toBeUndefined();
    });

    it(`after ${MAX_CHANGE_PUTS} puts of changes in a row the next is whole; a store applying them in order ends in the actor's state`, async () => {
      const { puts, put } = fakeStore();
      const w = new ReadStateWriter(put, { delayMs: 0 });
      const s = emptyReadState();
      for (let i = 0; i < 50; i++) markDelivered(s, `old${i}`); // a state larger than any put of changes here
      void deliver(w, s, 'm0');
      for (let i = 1; i <= MAX_CHANGE_PUTS + 3; i++) {
        void deliver(w, s, `m${i}`); // the user stays busy: a change while the previous put is in flight
        puts[puts.length - 1].resolve();
        await turn();
      }
      puts[puts.length - 1].resolve();
      await w.settled();
      expect(kinds(puts)).toEqual(['W', ...Array(MAX_CHANGE_PUTS).fill(1), 'W', 1, 1]);
      expect(stored(puts)).toEqual(toRecord(s));
      expect(w.pending('u')).toBeUndefined(); // no delay: no whole state waits behind the last put of changes
    });

    it('a failed put makes the next one whole; so does a save without its change, or changes with more ids than the state', async () => {
      const { puts, put } = fakeStore();
      const w = new ReadStateWriter(put, { delayMs: 0 });
      const s = rs(['a', 'b', 'c', 'd']);
      /** Saves while the last put is in flight, then answers that put (rejects it when `fail`). */
      const busy = async (save: () => unknown, fail = false) => {
        save();
        const p = puts[puts.length - 1];
        if (fail) p.reject(new Error('no PubAck'));
        else p.resolve();
        await turn();
      };
      void deliver(w, s, 'e');
      await busy(() => deliver(w, s, 'f'));
      await busy(() => deliver(w, s, 'g'));
      await busy(() => deliver(w, s, 'h'), true); // the put of [g] fails
      await busy(() => deliver(w, s, 'i'));
      await busy(() => w.save('u', s, false));
      await busy(() => deliver(w, s, 'j'));
      await busy(() => {
        // 12 changes that leave the state as it was (10 ids): its whole state is the smaller put.
        for (let i = 0; i < 6; i++) {
          void deliver(w, s, 'z');
          unmarkDelivered(s, 'z');
          void w.save('u', s, false, { undelivered: 'z' });
        }
      });
      await busy(() => deliver(w, s, 'k'));
      puts[puts.length - 1].resolve();
      await w.settled();
      expect(kinds(puts)).toEqual(['W', 1, 1, 'W', 1, 'W', 1, 'W', 1]);
      expect(stored(puts.filter((_, i) => i !== 3))).toEqual(toRecord(s)); // the failed put never reached the store
    });

    it('a user discarded with a put in flight (lease lost) and saved again (the partition back) starts over with a whole state', async () => {
      const { puts, put } = fakeStore();
      const w = new ReadStateWriter(put, { delayMs: 0 });
      const first = emptyReadState();
      void deliver(w, first, 'a'); // whole, in flight
      void deliver(w, first, 'b'); // waits as a change
      w.discard(() => true, new Error('moved'));
      // Another node wrote the user meanwhile; this node loads that state again and marks d.
      const again = rs(['x'], ['r1']);
      void deliver(w, again, 'd');
      puts[0].resolve(); // the first tenure's whole state is answered late
      await turn();
      expect(kinds(puts)).toEqual(['W', 'W']); // not a change [b, d] on the first tenure's state
      expect(puts[1].state).toEqual({ unread: ['x', 'd'], read: ['r1'] });
      puts[1].resolve();
      await w.settled();
    });

    it('a whole state that follows puts of changes tells the store which base they were made on, to clear them', async () => {
      const clock = new ManualClock();
      const { puts, put } = fakeStore();
      const w = new ReadStateWriter(put, { clock });
      const s = rs(['old1', 'old2', 'old3']);
      void deliver(w, s, 'a');
      clock.advance(READ_PUT_DELAY_MS);
      void deliver(w, s, 'b');
      puts[0].resolve();
      await turn();
      clock.advance(READ_PUT_DELAY_MS);
      puts[1].resolve();
      await turn();
      clock.advance(READ_PUT_DELAY_MS); // quiet: the whole state
      expect(kinds(puts)).toEqual(['W', 1, 'W']);
      expect(puts.map((p) => [p.base, p.clearBase])).toEqual([[undefined, undefined], [puts[0].seq, undefined], [undefined, puts[0].seq]]);
      puts[2].resolve();
      await w.settled();
      expect(stored(puts)).toEqual(toRecord(s));
    });
  });
});