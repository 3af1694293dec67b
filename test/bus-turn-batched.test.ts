import { describe, expect, it } from 'vitest';
import type { Bus } from '../bus/bus.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { TurnBatchedBus } from '../bus/turn-batched-bus.js';
import type { OwnerMessage } from '../protocol/index.js';
import { describeBusContract } from './contracts/bus.contract.js';

describeBusContract('TurnBatchedBus over MemoryBus', async () => ({ bus: new TurnBatchedBus(new MemoryBus()), cleanup: async () => {} }));

const ack = (n: number): OwnerMessage => ({ type: 'ack', user: 'u', device: 'd', sessionId: 's', id: `m${n}`, at: n });

/** A bus over a MemoryBus whose turn ends when the test says so; `seen` lists what reached the inner bus, in order. */
function harness() {
  const inner = new MemoryBus();
  const seen: string[] = [];
  inner.subscribe('sb.owner.>', (m) => seen.push(m.type === 'ack' ? m.id : m.type));
  let turnEnd: (() => void) | undefined;
  let scheduled = 0;
  const errors: string[] = [];
  const bus = new TurnBatchedBus(inner, (err, subject) => errors.push(`${subject}: ${String(err)}`), (flush) => {
    scheduled++;
    turnEnd = flush;
  });
  return { inner, bus, seen, errors, endTurn: () => turnEnd?.(), scheduled: () => scheduled };
}

describe('TurnBatchedBus (issue 13: a gateway publishes once per turn)', () => {
  it('holds the publishes of a turn and sends them at its end, in order, with one end-of-turn callback', () => {
    const h = harness();
    for (let i = 0; i < 5; i++) h.bus.publish('sb.owner.1', ack(i));
    expect(h.seen).toEqual([]);
    expect(h.scheduled()).toBe(1);
    h.endTurn();
    expect(h.seen).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    h.bus.publish('sb.owner.2', ack(5)); // the next turn schedules again
    expect(h.scheduled()).toBe(2);
    h.endTurn();
    expect(h.seen).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
  });

  it('sends what it holds before a request, and before the answer of a request it serves', async () => {
    const h = harness();
    h.inner.serve('sb.query.1', () => ({ type: 'error', code: 'unavailable', message: `saw ${h.seen.length}` }));
    h.bus.publish('sb.owner.1', ack(1));
    const reply = await h.bus.request('sb.query.1', { type: 'user_query', user: 'u' }, 1000);
    expect(reply).toMatchObject({ message: 'saw 1' }); // the held ack went first

    // A gateway answering a resync: the sessions it resends reach the owner before the answer.
    h.bus.serve('sb.resync', () => {
      h.bus.publish('sb.owner.1', { type: 'session_open', user: 'u', device: 'd', kind: 'pc', session: { node: 'n', id: 's' }, at: 0 });
      return { type: 'resynced', node: 'n', sessions: 1 };
    });
    const order: string[] = [];
    h.inner.subscribe('sb.owner.>', (m) => order.push(m.type));
    const answered = await h.inner.request('sb.resync', { type: 'resync', partition: 1, partitions: 4 }, 1000);
    order.push(answered.type);
    expect(order).toEqual(['session_open', 'resynced']);
  });

  it('reports a publish that fails at the end of the turn instead of throwing it, and sends the rest', () => {
    const failing: Bus = {
      publish: (subject, msg) => {
        if (msg.type === 'ack' && msg.id === 'm1') throw new Error('connection closed');
        seen.push(`${subject} ${msg.type === 'ack' ? msg.id : msg.type}`);
      },
      subscribe: () => ({ unsubscribe: () => {} }),
      request: async () => ({ type: 'error', code: 'unavailable', message: '' }),
      serve: () => ({ unsubscribe: () => {} }),
      close: async () => {},
    };
    const seen: string[] = [];
    const errors: string[] = [];
    let end: () => void = () => {};
    const bus = new TurnBatchedBus(failing, (err, subject) => errors.push(`${subject}: ${(err as Error).message}`), (f) => (end = f));
    bus.publish('sb.owner.1', ack(0));
    bus.publish('sb.owner.1', ack(1));
    bus.publish('sb.owner.1', ack(2));
    expect(() => end()).not.toThrow();
    expect(seen).toEqual(['sb.owner.1 m0', 'sb.owner.1 m2']);
    expect(errors).toEqual(['sb.owner.1: connection closed']);
  });

  it('sends what it holds when closed', async () => {
    const h = harness();
    h.bus.publish('sb.owner.1', ack(7));
    await h.bus.close();
    expect(h.seen).toEqual(['m7']);
  });
});
