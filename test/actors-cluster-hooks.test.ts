import { afterEach, describe, expect, it } from 'vitest';
import { harness, settle, until } from './support/actors-fakes.js';

/** The hooks the cluster uses: the ack point (`decided`), the lease fence (`mayAct`) and partition eviction. */

type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

describe('router cluster hooks', () => {
  it('reports each message as decided once it was carried out, duplicates included', async () => {
    const decided: string[] = [];
    h = harness({ decided: (id) => decided.push(id) });
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    h.route('u1', 'm1'); // a JetStream redelivery while the first is in flight
    await until(() => decided.length === 2);
    expect(decided).toEqual(['m1', 'm1']);
    expect(h.deliveries()).toEqual(['gw1:s1']);
  });

  it('does not act, nor ack, for a user whose lease is gone (fence)', async () => {
    let valid = true;
    const decided: string[] = [];
    h = harness({ mayAct: () => valid, decided: (id) => decided.push(id), ackTimeoutMs: 5000 });
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    await until(() => decided.length === 1);
    valid = false;
    h.route('u1', 'm2');
    await settle(h);
    expect(decided).toEqual(['m1']);
    expect(h.deliveries()).toEqual(['gw1:s1']);
    expect((await h.decisions('u1')).map((d) => d.id)).toEqual(['m1']);
  });

  it('evicts the users of a released partition and spawns them fresh afterwards', async () => {
    h = harness();
    h.openPc('a', 'pc', 's1');
    h.openPc('b', 'pc', 's2');
    h.route('a', 'm1');
    await until(() => h.deliveries().length === 1);
    await settle(h);
    expect(h.router.evict((u) => u === 'a')).toBe(1);
    expect(h.router.stats.residentUsers).toBe(1);
    await h.router.drain(1000); // nothing counted as in flight for the evicted actor
    expect((await h.view('a')).pc.sessions).toBe(0); // a's state went with its partition
    expect((await h.view('b')).pc.sessions).toBe(1);
  });
});
