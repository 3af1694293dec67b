import { describe, expect, it } from 'vitest';
import { FencedBus, type OwnerFence } from '../bus/fence.js';
import { MemoryBus } from '../bus/memory-bus.js';
import { partitionOf } from '../bus/subjects.js';
import type { BusMessage, GatewayMessage } from '../protocol/index.js';

const P = 8;

function harness(valid: (p: number) => boolean) {
  const inner = new MemoryBus();
  const got: BusMessage[] = [];
  inner.subscribe('gw', (m) => got.push(m));
  const owner: OwnerFence = { mayAct: () => true, fence: (p) => (valid(p) ? { revision: 100 + p, epoch: 1 } : undefined) };
  return { bus: new FencedBus(inner, owner, P), got };
}

describe('FencedBus', () => {
  const frame = { type: 'message' as const, id: 'm1', from: 'a', title: 't', text: 'x', data: { k: 'v' }, ts: 5 };

  it('stamps deliveries and frames with the lease of the user partition, every other field as it was', () => {
    const h = harness(() => true);
    const p = partitionOf('alice', P);
    const deliver: GatewayMessage = { type: 'deliver', sessionId: 's1', frame, user: 'alice' };
    const clear: GatewayMessage = { type: 'frame', sessionId: 's1', frame: { type: 'clear', ids: ['m1'], badge: 0 }, user: 'alice' };
    h.bus.publish('gw', deliver);
    h.bus.publish('gw', clear);
    expect(h.got).toEqual([
      { ...deliver, fence: { partition: p, revision: 100 + p } },
      { ...clear, fence: { partition: p, revision: 100 + p } },
    ]);
    expect(h.got[0]).not.toBe(deliver); // the caller's object is left alone
    expect(deliver).not.toHaveProperty('fence');
  });

  it('drops a delivery whose lease is gone, and passes what is not for a user unchanged', () => {
    const h = harness(() => false);
    h.bus.publish('gw', { type: 'deliver', sessionId: 's1', frame, user: 'alice' });
    const close: GatewayMessage = { type: 'close_session', sessionId: 's1', code: 4409, reason: 'replaced' };
    h.bus.publish('gw', close);
    expect(h.got).toEqual([close]);
  });
});
