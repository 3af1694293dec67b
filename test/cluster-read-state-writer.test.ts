import { describe, expect, it } from 'vitest';
import { ReadStateWriter } from '../cluster/read-state-writer.js';
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
    const w = new ReadStateWriter(put);
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
    const w = new ReadStateWriter(put, 2);
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
    const w = new ReadStateWriter(put);
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
});
