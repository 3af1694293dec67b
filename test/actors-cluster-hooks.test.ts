import { afterEach, describe, expect, it } from 'vitest';
import { harness, settle, until } from './support/actors-fakes.js';

/** The hooks the cluster uses: the one completion call (`done`), the lease fence (`fence`) and partition eviction. */

type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

describe('router cluster hooks', () => {
  it('dropSessionsOf: a gateway gone closes its sessions here; their unacked deliveries fall back at once; others stay', async () => {
    h = harness({ ackTimeoutMs: 60_000 });
    h.openPc('u1', 'pc', 's1', 'gw1');
    h.openPhone('u1', 'phone', 'android', 's2', 'gw2');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw1:s1']); // PC active: to the PC, unacked
    // A session of gw1 opened after the process that replaced the crashed one started stays.
    h.send({ type: 'session_open', user: 'u2', device: 'pc', kind: 'pc', session: { node: 'gw1', id: 'n1' }, at: Date.now(), openedAt: 5000 });
    h.send({ type: 'session_open', user: 'u2', device: 'laptop', kind: 'pc', session: { node: 'gw1', id: 'o1' }, at: Date.now(), openedAt: 3000 });
    await settle(h);
    expect(h.router.dropSessionsOf('gw1', 4000)).toBe(2); // u1's s1 (no openedAt) and u2's o1
    await until(() => h.deliveries().length === 2);
    expect(h.deliveries()[1]).toBe('gw2:s2'); // m1 fell back to the phone now, not after the 60 s ack timeout
    expect((await h.view('u1')).pc).toMatchObject({ state: 'inactive', sessions: 0 });
    expect((await h.view('u1')).devices).toMatchObject([{ device: 'phone', online: true }]);
    expect((await h.view('u2')).pc).toMatchObject({ sessions: 1 });
    expect(h.router.dropSessionsOf('gw2', Infinity)).toBe(1);
    await settle(h);
    expect((await h.view('u1')).devices).toMatchObject([{ device: 'phone', online: false }]);
    expect(h.router.dropSessionsOf('gw2', Infinity)).toBe(0);
  });

  it('reports a message done once it reached a final outcome; a redelivery in flight is done with it, one after is done again', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    const accepted = { acceptedAt: Date.now() }; // a redelivery is the same accepted message
    h.route('u1', 'm1', accepted);
    h.route('u1', 'm1', accepted); // a JetStream redelivery while the first is in flight
    await until(() => h.deliveries().length === 1);
    await settle(h);
    expect(h.settled).toEqual([]);
    h.send({ type: 'ack', user: 'u1', device: 'pc', sessionId: 's1', id: 'm1', at: Date.now() });
    await until(() => h.settled.length === 1);
    h.route('u1', 'm1', accepted); // redelivered after it finished
    await until(() => h.settled.length === 2);
    expect(h.settled).toEqual(['m1', 'm1']);
    expect(h.deliveries()).toEqual(['gw1:s1']);
  });

  it('the same id accepted anew (another acceptedAt: past the dedupe window) is routed and delivered, not dropped', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1', { acceptedAt: 1000 });
    await until(() => h.deliveries().length === 1);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    h.route('u1', 'm1', { acceptedAt: 1000 }); // the same accepted message handed out again: settled, not sent
    await until(() => h.settled.length === 2);
    expect(h.deliveries()).toHaveLength(1);
    h.route('u1', 'm1', { acceptedAt: 200_000 }); // answered 202 again after the window: a new message
    await until(() => h.deliveries().length === 2);
    expect((await h.decisions('u1')).map((d) => d.id)).toEqual(['m1', 'm1']);
  });

  it('does not act, nor ack, for a user whose lease is gone (fence)', async () => {
    let valid = true;
    h = harness({ fence: { mayAct: () => valid, fence: () => undefined }, ackTimeoutMs: 5000 });
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    h.send({ type: 'ack', user: 'u1', device: 'pc', sessionId: 's1', id: 'm1', at: Date.now() });
    await until(() => h.settled.length === 1);
    valid = false;
    h.route('u1', 'm2');
    await settle(h);
    expect(h.settled).toEqual(['m1']);
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

  it('merges a previous owner\'s decisions in front once, for a query or a handoff alike; two lookups at once merge them once', async () => {
    const before = harness();
    before.route('u1', 'm0'); // no session, no device: one decision
    before.route('u2', 'n0');
    await until(() => before.settled.length === 2);
    const saved = new Map(before.router.history.packedOf(() => true));
    before.router.stop();
    expect([...saved.keys()].sort()).toEqual(['u1', 'u2']);

    const loads: string[] = [];
    const waiting: (() => void)[] = [];
    h = harness({ loadDecisions: (user) => (loads.push(user), new Promise((r) => waiting.push(() => r(saved.get(user)!)))) });
    h.route('u1', 'm1');
    h.route('u2', 'n1');
    await until(() => h.settled.length === 2);
    // A handoff and a query at once: two lookups of u1, merged once.
    const handoff = h.router.mergePreviousDecisions(() => true);
    const query = h.decisions('u1');
    for (const release of waiting.splice(0)) release();
    await handoff;
    expect((await query).map((d) => d.id)).toEqual(['m1', 'm0']);
    expect((await h.decisions('u2')).map((d) => d.id)).toEqual(['n1', 'n0']);
    expect(loads.sort()).toEqual(['u1', 'u1', 'u2']);
    // Merged: neither a query nor a handoff looks again.
    await h.router.mergePreviousDecisions(() => true);
    expect((await h.decisions('u1')).map((d) => d.id)).toEqual(['m1', 'm0']);
    expect(loads).toHaveLength(3);
  });

  it('drops a previous owner\'s decisions that arrive after the user\'s partition was evicted, and only those', async () => {
    const older = harness();
    older.route('u1', 'm0');
    older.route('u2', 'n0');
    await until(() => older.settled.length === 2);
    const saved = new Map(older.router.history.packedOf(() => true));
    older.router.stop();

    const waiting: (() => void)[] = [];
    h = harness({ loadDecisions: (user) => new Promise((r) => waiting.push(() => r(saved.get(user)!))) });
    h.route('u1', 'm1');
    h.route('u2', 'n1');
    await until(() => h.settled.length === 2);
    const handoff = h.router.mergePreviousDecisions(() => true);
    h.router.evict((u) => u === 'u2'); // u2's partition moves on; u1's stays (another partition released meanwhile)
    for (const release of waiting.splice(0)) release();
    await handoff;
    expect(h.router.history.usersOf(() => true)).toEqual(['u1']);
    expect(h.router.history.newest('u1', 10).map((d) => d.id)).toEqual(['m1', 'm0']);
  });
});

