import { describe, expect, it } from 'vitest';
import { READ_PUT_DELAY_MS, ReadStateWriter } from '../cluster/read-state-writer.js';
import { ManualClock } from './support/manual-clock.js';
import { emptyReadState, fromRecord, markDelivered, markRead, toRecord } from '../store/read-state.js';
import type { ReadState, ReadStateRecord } from '../store/types.js';

/** A put that records what it was given (a copy, as an encoder would) and is answered only when the test says so. */
function fakeStore() {
  const puts: { user: string; state: ReadStateRecord; resolve(): void; reject(e: Error): void }[] = [];
  const put = (user: string, state: ReadState) =>
    new Promise<void>((resolve, reject) => puts.push({ user, state: toRecord(state), resolve, reject }));
  return { puts, put };
}
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
});
