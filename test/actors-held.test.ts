import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DecisionHistory } from '../actors/decision-history.js';
import { unpackDecision } from '../actors/decision-pack.js';
import { CLEAR_PUSH_INTERVAL_MS, MAX_WAIT_BEHIND_REPLAY_MS } from '../actors/user-actor.js';
import { gate, harness, settle, until } from './support/actors-fakes.js';
import type { UserPolicy } from '../protocol/index.js';

/**
 * PROTOCOL.md v1.1 section 4 in the user actor, in virtual time: held messages (TTL, cap, replay in accept order,
 * ack timeouts and closed sessions ending in held), flow control (section 2 window) and read sync with badges.
 */

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
  h?.router.stop();
});

type H = ReturnType<typeof harness>;
let h: H;
const delivered = (node = 'gw1') => h.gateway.filter((g) => g.node === node && g.msg.type === 'deliver').map((g) => (g.msg as { frame: { id: string } }).frame.id);
const frames = (type: string) => h.gateway.filter((g) => g.msg.type === type).map((g) => g.msg as any);
const heldIds = (user: string) => (h.held.held.get(user) ?? []).map((x) => x.msg.id);

describe('held messages', () => {
  it('nothing reachable -> held durably before done; a PC session opening gets them in accept order; an ack drops them', async () => {
    h = harness();
    for (const id of ['m1', 'm2', 'm3']) h.route('u1', id);
    await until(() => h.settled.length === 3);
    expect(h.routed.map((r) => r.route)).toEqual(['held', 'held', 'held']);
    expect(heldIds('u1')).toEqual(['m1', 'm2', 'm3']);
    expect((await h.view('u1')).held).toBe(3);
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().length === 3);
    expect(delivered()).toEqual(['m1', 'm2', 'm3']);
    for (const id of ['m1', 'm2', 'm3']) h.ack('u1', 'pc', 's1', id);
    await until(() => heldIds('u1').length === 0);
    expect((await h.view('u1')).held).toBe(0);
    expect((await h.metrics.heldReleased.get()).values).toMatchObject([{ labels: { why: 'delivered' }, value: 3 }]);
  });

  it('a held or undeliverable decision is packed (written, embedded) once the hold is durable, not at passivation', async () => {
    const sunk: string[] = [];
    h = harness({ history: new DecisionHistory(1_000_000, 100, (_u, p) => sunk.push(unpackDecision(p).id)) });
    h.route('u1', 'm1'); // no session: held
    h.send({ type: 'route', user: 'u1', msg: { id: 'm2', to: 'u1', ttlSeconds: 0, acceptedAt: Date.now() } as never }); // now or never: undeliverable
    await until(() => h.settled.length === 2);
    await until(() => sunk.length === 2);
    expect(sunk.sort()).toEqual(['m1', 'm2']);
    // Routed again from the held store and acked: that decision too.
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().includes('m1'));
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => sunk.length === 3);
    expect(sunk[2]).toBe('m1');
  });

  it('a message held while a replay is being read is replayed too, not left until the next session', async () => {
    h = harness();
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    const stored = gate();
    const slow = stored.promise;
    const hold = h.held.hold.bind(h.held);
    h.held.hold = async (u, m) => (await slow, hold(u, m)); // m2's hold is still being written when the replay lists
    h.route('u1', 'm2');
    await settle(h);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1'); // replay starts: its listing holds m1 only, and waits
    await settle(h);
    stored(); // m2 durably held with s1 open: asks for a replay while the first one is still being read
    await until(() => heldIds('u1').includes('m2'));
    await settle(h);
    h.held.listGate = undefined;
    open();
    await until(() => delivered().length === 2);
    await settle(h);
    expect(delivered()).toEqual(['m1', 'm2']);
  });

  it('a listing read before a held message reached the user (acked) or was read does not send it again', async () => {
    h = harness();
    for (const id of ['m1', 'm2', 'm3']) h.route('u1', id);
    await until(() => heldIds('u1').length === 3);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1'); // a replay starts and its listing waits (a slow store read)
    await settle(h);
    h.openPc('u1', 'pc', 's1b'); // the PC reconnects and asks again while it is read: a second listing follows the first
    await settle(h);
    const openSecond = gate();
    h.held.listGate = openSecond.promise;
    open(); // the first listing answers; its messages go out, and the second listing (all three, still held) waits
    await until(() => delivered().length === 3);
    h.ack('u1', 'pc', 's1b', 'm1'); // reached the user: no longer held
    await until(() => !heldIds('u1').includes('m1'));
    h.read('u1', ['m2']); // read elsewhere: no longer held
    await until(() => !heldIds('u1').includes('m2'));
    h.held.listGate = undefined;
    openSecond();
    await settle(h);
    await vi.advanceTimersByTimeAsync(100);
    await settle(h);
    expect(delivered().filter((id) => id === 'm1')).toHaveLength(1);
    expect(delivered().filter((id) => id === 'm2')).toHaveLength(1);
  });

  it('an ack handled after a listing was read but before it was routed keeps that message out of it', async () => {
    h = harness();
    for (const id of ['m1', 'm2']) h.route('u1', id);
    await until(() => heldIds('u1').length === 2);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    h.openPc('u1', 'pc', 's1b'); // a second listing follows the first
    await settle(h);
    const openSecond = gate();
    h.held.listGate = openSecond.promise;
    open();
    await until(() => delivered().length === 2);
    // The actor is busy with a query whose store read is slow: the ack and the second listing queue behind it.
    const answer = gate();
    const slow = answer.promise;
    const count = h.held.count.bind(h.held);
    h.held.count = async (u, n) => (await slow, count(u, n));
    const view = h.view('u1');
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    h.ack('u1', 'pc', 's1b', 'm1');
    h.held.listGate = undefined;
    openSecond(); // read now: m1 is still in it, and its ack is handled before it is routed
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    h.held.count = count;
    answer();
    await view;
    await settle(h);
    expect(delivered().filter((id) => id === 'm1')).toHaveLength(1);
  });

  it('an ingress copy that comes while its held copy is listed is sent once, settled, and the held copy dropped', async () => {
    h = harness();
    h.held.held.set('u1', [{ msg: { id: 'm1', to: 'u1', text: 'hello', acceptedAt: Date.now() }, expiresAt: Date.now() + 60_000 }]);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    h.route('u1', 'm1'); // the ingress copy (cluster: redelivered by JetStream) comes while the listing is read: it waits
    h.held.listGate = undefined;
    open();
    await until(() => delivered().length === 1);
    await settle(h);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => heldIds('u1').length === 0 && h.settled.includes('m1'));
    h.close('u1', 'pc', 's1');
    h.openPc('u1', 'pc', 's2');
    await settle(h);
    expect(delivered()).toEqual(['m1']);
  });

  it('a hold still being stored when the store is counted again keeps the count above 0: the next session gets it', async () => {
    h = harness();
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    const stored = gate();
    const slow = stored.promise;
    const hold = h.held.hold.bind(h.held);
    h.held.hold = async (u, m) => (await slow, hold(u, m)); // the cluster's store: not listed before JetStream has it
    h.route('u1', 'm2');
    await settle(h);
    h.read('u1', ['m1']); // drops m1 and counts again: the store has nothing yet
    await until(() => heldIds('u1').length === 0);
    await settle(h);
    stored();
    await until(() => heldIds('u1').includes('m2'));
    await settle(h);
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().includes('m2'));
    expect(delivered()).toEqual(['m2']);
  });

  it('a delivery acked while something is held counts the store again only when it dropped a held copy', async () => {
    h = harness();
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().includes('m1')); // m1 replayed, not acked yet: still held
    h.route('u1', 'm2');
    await until(() => delivered().includes('m2'));
    let counts = 0;
    const count = h.held.count.bind(h.held);
    h.held.count = async (u, n) => (counts++, count(u, n)); // the cluster's count reads the user's backlog from JetStream
    h.ack('u1', 'pc', 's1', 'm2'); // not held: nothing to count
    await until(() => h.settled.includes('m2'));
    await settle(h);
    expect(counts).toBe(0);
    h.ack('u1', 'pc', 's1', 'm1'); // held: dropped, counted again
    await until(() => heldIds('u1').length === 0);
    await settle(h);
    expect(counts).toBe(1);
  });

  it('after a restart, an unsettled copy of a held message (its settle lost to kill -9) is settled, not sent again', async () => {
    // The store held m1 and m2 before the crash; the inbox hands both out again (replayed after the reconnect grace).
    h = harness();
    const msg = (id: string) => ({ id, to: 'u1', text: 'hello', acceptedAt: Date.now() });
    h.held.held.set('u1', [{ msg: msg('m1'), expiresAt: Date.now() + 60_000 }, { msg: msg('m2'), expiresAt: Date.now() + 60_000 }]);
    h.openPc('u1', 'pc', 's1'); // within the grace: the held copies go out
    await until(() => delivered().length === 2);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => !heldIds('u1').includes('m1'));
    h.route('u1', 'm1'); // the grace ends: m1 reached the user already
    h.route('u1', 'm2'); // m2 is still on its way (unacked): this copy waits for it
    await settle(h);
    h.ack('u1', 'pc', 's1', 'm2');
    await until(() => h.settled.includes('m2'));
    expect(h.settled).toContain('m1');
    expect(delivered()).toEqual(['m1', 'm2']);
    expect(heldIds('u1')).toEqual([]);
  });

  it('a stored push token makes the user reachable: held messages go out by the vendor', async () => {
    h = harness();
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    h.send({ type: 'device_put', user: 'u1', device: 'pixel', os: 'android', token: 'tok' });
    await until(() => h.pushes.jobs.length === 1);
    expect(h.pushes.jobs[0]).toMatchObject({ jobId: 'm1:pixel', vendor: 'fcm' });
    await until(() => heldIds('u1').length === 0);
  });

  it('a hold the store cannot write is never done (the ingress keeps it) and is tried again with backoff', async () => {
    h = harness();
    h.held.failing = true;
    h.route('u1', 'm1');
    await settle(h);
    await vi.advanceTimersByTimeAsync(1500);
    await settle(h);
    expect(h.settled).toEqual([]);
    h.held.failing = false;
    await vi.advanceTimersByTimeAsync(2000);
    await until(() => h.settled.length === 1);
    expect(heldIds('u1')).toEqual(['m1']);
  });

  it('ttlSeconds 0 -> undeliverable, nothing held', async () => {
    h = harness();
    h.route('u1', 'm1', { ttlSeconds: 0 });
    await until(() => h.settled.length === 1);
    expect(h.routed[0].route).toBe('undeliverable');
    expect(heldIds('u1')).toEqual([]);
  });

  it('TTL: the message ttlSeconds wins over SWITCHBOARD_HOLD_TTL_SECONDS; an expired one is never delivered', async () => {
    h = harness({ holdTtlMs: 3600_000 });
    h.route('u1', 'short', { ttlSeconds: 60 });
    h.route('u1', 'long');
    await until(() => heldIds('u1').length === 2);
    await vi.advanceTimersByTimeAsync(61_000);
    expect((await h.view('u1')).held).toBe(1);
    await vi.advanceTimersByTimeAsync(3600_000);
    expect((await h.view('u1')).held).toBe(0);
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    expect(delivered()).toEqual([]);
  });

  it('SWITCHBOARD_HOLD_MAX: the oldest are dropped first', async () => {
    h = harness({ holdMax: 3 });
    for (let i = 1; i <= 5; i++) {
      h.route('u1', `m${i}`);
      await until(() => h.settled.length === i);
    }
    await until(() => heldIds('u1').length === 3);
    expect(heldIds('u1')).toEqual(['m3', 'm4', 'm5']);
  });

  it('SWITCHBOARD_HOLD_MAX holds at once for a session opening: more held than the cap (held before this actor ran) replay only the newest', async () => {
    h = harness({ holdMax: 3 });
    const now = Date.now();
    // Held by an earlier owner or life of the actor: the store has 5, this actor counted none of them.
    h.held.held.set('u1', [1, 2, 3, 4, 5].map((i) => ({ msg: { id: `m${i}`, to: 'u1', text: 't', acceptedAt: now + i }, expiresAt: now + 3_600_000 })));
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().length === 3);
    await settle(h);
    expect(delivered()).toEqual(['m3', 'm4', 'm5']);
    expect((await h.metrics.heldReleased.get()).values).toMatchObject([{ labels: { why: 'over_cap' }, value: 2 }]);
  });

  /** m1 sent to the PC's session s1, never acked: held once its ack timed out, with nothing else to try. */
  async function heldAfterAckTimeout(): Promise<void> {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    await until(() => delivered().length === 1);
    await vi.advanceTimersByTimeAsync(5000);
    await until(() => h.settled.length === 1);
    expect(heldIds('u1')).toEqual(['m1']);
  }

  it('held after its ack timed out on a session that stays: the next sign of life of a session (an ack, a ping) replays it', async () => {
    // A gateway frozen for a while: its sessions miss their acks, the message ends held, the client never reconnects.
    await heldAfterAckTimeout();
    h.route('u1', 'm2'); // the gateway is back: a new message gets through and is acked
    await until(() => delivered().length === 2);
    h.ack('u1', 'pc', 's1', 'm2');
    await until(() => delivered().length === 3);
    expect(h.gateway.filter((g) => g.msg.type === 'deliver').map((g) => `${(g.msg as any).sessionId}:${(g.msg as any).frame.id}`)).toEqual(['s1:m1', 's1:m2', 's1:m1']);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => heldIds('u1').length === 0);
    // Only once: a later ping with nothing held sends nothing.
    h.send({ type: 'touch', user: 'u1', device: 'pc', sessionId: 's1', at: Date.now() });
    await settle(h);
    expect(delivered()).toHaveLength(3);
  });

  it('an ack timeout with nothing left to try ends in held; the reconnecting PC gets it', async () => {
    await heldAfterAckTimeout();
    expect((await h.decisions('u1')).map((d) => d.route)).toEqual(['held', 'pc']);
    h.openPc('u1', 'pc', 's2');
    await until(() => delivered().length === 2);
    expect(h.gateway.filter((g) => g.msg.type === 'deliver').map((g) => (g.msg as { sessionId: string }).sessionId)).toEqual(['s1', 's2']);
  });

  it('a session that closes with unacked deliveries counts them as timed out at once -> held, replayed to the new session', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    h.route('u1', 'm2');
    await until(() => delivered().length === 2);
    h.openPc('u1', 'pc', 's2'); // the client reconnects first; its old socket closes after
    h.close('u1', 'pc', 's1');
    await until(() => delivered().length === 4);
    expect(h.gateway.filter((g) => g.msg.type === 'deliver').map((g) => `${(g.msg as any).sessionId}:${(g.msg as any).frame.id}`)).toEqual(['s1:m1', 's1:m2', 's2:m1', 's2:m2']);
    expect(h.settled).toEqual(['m1', 'm2']); // done once held, without waiting for the ack timeout
    expect(Date.now() - h.routed[0].at).toBeLessThan(5000);
  });
});

describe('new messages behind a pending replay (section 4: held ones first, in accept order)', () => {
  const count = (id: string) => h.settled.filter((x) => x === id).length;

  it('a message routed while a session\'s held listing is being read waits for it: the client gets the held ones first', async () => {
    h = harness();
    for (const id of ['m1', 'm2']) h.route('u1', id); // nobody reachable: held
    await until(() => heldIds('u1').length === 2);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1'); // the replay's listing waits (a slow store read)
    await settle(h);
    h.route('u1', 'm3'); // sent right after the session opened
    h.route('u1', 'm4');
    await settle(h);
    expect(delivered()).toEqual([]); // behind the held ones, not ahead of them
    h.held.listGate = undefined;
    open();
    await until(() => delivered().length === 4);
    await settle(h);
    expect(delivered()).toEqual(['m1', 'm2', 'm3', 'm4']);
    for (const id of ['m1', 'm2', 'm3', 'm4']) h.ack('u1', 'pc', 's1', id);
    await until(() => heldIds('u1').length === 0 && count('m4') === 1);
    await settle(h);
    expect(['m3', 'm4'].map(count)).toEqual([1, 1]); // done once each (m1 and m2 when held, and again once replayed)
  });

  it('a message routed while holds are still being written, a session open meanwhile, goes after them: they are in no listing yet', async () => {
    h = harness();
    const stored = gate();
    const hold = h.held.hold.bind(h.held);
    h.held.hold = async (u, m) => (await stored.promise, hold(u, m)); // a slow disk: the holds are not written yet
    for (const id of ['m1', 'm2']) h.route('u1', id);
    await settle(h);
    h.openPc('u1', 'pc', 's1'); // its replay lists nothing: m1 and m2 are not stored yet
    await settle(h);
    h.route('u1', 'm3');
    await settle(h);
    expect(delivered()).toEqual([]); // not ahead of m1 and m2
    stored();
    await until(() => delivered().length === 3);
    await settle(h);
    expect(delivered()).toEqual(['m1', 'm2', 'm3']);
  });

  it('a message read while it waits behind holds being written is finished, never routed nor held (section 4: read, no longer held)', async () => {
    h = harness();
    const stored = gate();
    const hold = h.held.hold.bind(h.held);
    h.held.hold = async (u, m) => (await stored.promise, hold(u, m));
    h.route('u1', 'm1'); // nobody reachable: held, the write slow
    await settle(h);
    h.route('u1', 'm2'); // waits behind m1's hold
    await settle(h);
    h.read('u1', ['m2']);
    await settle(h);
    expect(count('m2')).toBe(1); // finished for the ingress as it is read
    stored();
    await until(() => heldIds('u1').includes('m1'));
    await settle(h);
    expect(heldIds('u1')).toEqual(['m1']); // m2 never held: a restart would not deliver it
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().length === 1);
    await settle(h);
    expect(delivered()).toEqual(['m1']);
  });

  it('a message routed while the held count still loads at actor start waits for what was held before the restart', async () => {
    h = harness();
    const now = Date.now();
    h.held.held.set('u1', [1, 2].map((i) => ({ msg: { id: `h${i}`, to: 'u1', text: 't', acceptedAt: now - 1000 + i }, expiresAt: now + 60_000 })));
    const loaded = gate();
    const slow = loaded.promise;
    const countOf = h.held.count.bind(h.held);
    h.held.count = async (u, n) => (await slow, countOf(u, n));
    h.openPc('u1', 'pc', 's1'); // a fresh actor: the held count is being read
    h.route('u1', 'm3');
    await settle(h);
    expect(delivered()).toEqual([]);
    loaded();
    await until(() => delivered().length === 3);
    await settle(h);
    expect(delivered()).toEqual(['h1', 'h2', 'm3']);
  });

  it('a listing that fails still routes what waited behind it, once each; a copy redelivered meanwhile is done once', async () => {
    h = harness();
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    const fail = gate();
    const failing = fail.promise;
    const list = h.held.list.bind(h.held);
    h.held.list = async () => {
      await failing;
      throw new Error('store unreadable');
    };
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    h.route('u1', 'm2');
    h.route('u1', 'm2'); // redelivered by its ingress while it waits
    await settle(h);
    expect(delivered()).toEqual([]);
    fail();
    await until(() => delivered().includes('m2'));
    h.held.list = list;
    await settle(h);
    expect(delivered()).toEqual(['m2']);
    h.ack('u1', 'pc', 's1', 'm2');
    await until(() => count('m2') === 1);
    await settle(h);
    expect(count('m2')).toBe(1);
    expect(heldIds('u1')).toEqual(['m1']); // still held: the next replay gets it
  });

  it('fenced meanwhile: a message that waited is neither routed nor done (the next owner routes it)', async () => {
    let valid = true;
    h = harness({ fence: { mayAct: () => valid, fence: () => undefined } });
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1');
    await settle(h);
    h.route('u1', 'm2');
    await settle(h);
    valid = false; // the lease is lost while the listing is read
    h.held.listGate = undefined;
    open();
    await settle(h);
    expect(delivered()).not.toContain('m2');
    expect(count('m2')).toBe(0);
  });

  it('a listing that hangs holds new messages back at most MAX_WAIT_BEHIND_REPLAY_MS; the held ones follow when it comes', async () => {
    h = harness();
    h.route('u1', 'm1');
    await until(() => heldIds('u1').length === 1);
    const open = gate();
    h.held.listGate = open.promise;
    h.openPc('u1', 'pc', 's1'); // the held store is slow: the listing does not come
    await settle(h);
    h.route('u1', 'm2');
    await settle(h);
    await vi.advanceTimersByTimeAsync(MAX_WAIT_BEHIND_REPLAY_MS - 1);
    await settle(h);
    expect(delivered()).toEqual([]); // waiting for the held one still
    h.route('u1', 'm3'); // joins the same wait: goes with m2, not a full wait later
    await vi.advanceTimersByTimeAsync(1);
    await until(() => delivered().length === 2);
    expect(delivered()).toEqual(['m2', 'm3']); // a stalled store does not stall live messages
    h.held.listGate = undefined;
    open();
    await until(() => delivered().length === 3);
    expect(delivered()).toEqual(['m2', 'm3', 'm1']);
    await settle(h);
    expect(['m2', 'm3'].map(count)).toEqual([0, 0]); // not acked yet, and never done twice by the timer
  });

  it('nothing held, and known to be: a new message goes at once, without waiting on the held store', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    await settle(h); // the held count is loaded: 0
    const hung = new Promise<never>(() => {});
    h.held.list = () => hung;
    h.held.count = () => hung;
    h.route('u1', 'm1');
    await until(() => delivered().length === 1);
    expect(delivered()).toEqual(['m1']);
  });
});

describe('flow control (section 2 window)', () => {
  it('at most SWITCHBOARD_MAX_INFLIGHT unacked per session; the rest follow in order as acks come; the ack timeout starts at send', async () => {
    h = harness({ maxInflight: 2 });
    h.openPc('u1', 'pc', 's1');
    for (let i = 1; i <= 5; i++) h.route('u1', `m${i}`);
    await until(() => delivered().length === 2);
    await settle(h);
    expect(delivered()).toEqual(['m1', 'm2']);
    await vi.advanceTimersByTimeAsync(4000);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => delivered().length === 3);
    expect(delivered()[2]).toBe('m3');
    // m3 was sent 4 s after it was routed: its own ack timeout runs 5 s from then, m2's ends first.
    await vi.advanceTimersByTimeAsync(1000);
    await until(() => delivered().length === 4);
    expect(delivered()[3]).toBe('m4');
    for (const id of ['m3', 'm4']) h.ack('u1', 'pc', 's1', id);
    await until(() => delivered().length === 6);
    expect(delivered().slice(0, 4)).toEqual(['m1', 'm2', 'm3', 'm4']);
    // m5 through the window; m2, held when its ack timed out, again now that the session answers.
    expect(delivered().slice(4).sort()).toEqual(['m2', 'm5']);
  });

  // Section 4 holds when a waiting delivery goes out, not only when it was decided.
  const sentTo = (sessionId: string) => h.gateway.filter((g) => g.msg.type === 'deliver' && (g.msg as any).sessionId === sessionId).map((g) => (g.msg as any).frame.id);

  it('a phone that goes to the background gets none of what still waits in its window: its vendor push instead', async () => {
    h = harness({ maxInflight: 2 });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 'fcm-tok' });
    h.openPhone('u1', 'pixel', 'android', 'p1');
    for (let i = 1; i <= 5; i++) h.route('u1', `m${i}`);
    await until(() => sentTo('p1').length === 2);
    h.presence('u1', 'pixel', 'p1', 'background');
    await until(() => h.pushes.jobs.length === 3);
    expect(h.pushes.jobs.map((j) => j.message.id)).toEqual(['m3', 'm4', 'm5']); // at once, in order
    h.ack('u1', 'pixel', 'p1', 'm1'); // a late ack frees room: nothing more goes to the backgrounded app
    await settle(h);
    expect(sentTo('p1')).toEqual(['m1', 'm2']);
    await vi.advanceTimersByTimeAsync(5000); // m2's ack timeout: its push
    await until(() => h.pushes.jobs.length === 4);
    expect(h.pushes.jobs[3].message.id).toBe('m2');
    expect(sentTo('p1')).toEqual(['m1', 'm2']);
  });

  it('a PC that turns active takes what still waits in the phone\'s window; one that turns inactive gives its waiting ones to the phone', async () => {
    h = harness({ maxInflight: 2 });
    h.openPc('u1', 'pc', 's1', 'gw1', false);
    h.presence('u1', 'pc', 's1', 'inactive', 'idle');
    h.openPhone('u1', 'pixel', 'android', 'p1');
    for (let i = 1; i <= 5; i++) h.route('u1', `m${i}`);
    await until(() => sentTo('p1').length === 2);
    h.presence('u1', 'pc', 's1', 'active');
    await until(() => sentTo('s1').length === 2);
    h.ack('u1', 'pixel', 'p1', 'm1');
    h.ack('u1', 'pixel', 'p1', 'm2');
    await settle(h);
    expect(sentTo('p1')).toEqual(['m1', 'm2']); // never the phone while the PC is active
    expect(sentTo('s1')).toEqual(['m3', 'm4']); // m5 waits in the PC's window
    h.presence('u1', 'pc', 's1', 'inactive', 'screen_locked');
    await until(() => sentTo('p1').length === 3);
    expect(sentTo('p1')).toEqual(['m1', 'm2', 'm5']);
    h.ack('u1', 'pc', 's1', 'm3');
    await settle(h);
    expect(sentTo('s1')).toEqual(['m3', 'm4']); // never the inactive PC while the phone is reachable
  });

  it('with no phone reachable the inactive PC keeps its waiting deliveries, in order (pc_fallback)', async () => {
    h = harness({ maxInflight: 1 });
    h.openPc('u1', 'pc', 's1');
    for (let i = 1; i <= 3; i++) h.route('u1', `m${i}`);
    await until(() => sentTo('s1').length === 1);
    h.presence('u1', 'pc', 's1', 'inactive', 'idle');
    for (const id of ['m1', 'm2', 'm3']) {
      await until(() => sentTo('s1').includes(id));
      h.ack('u1', 'pc', 's1', id);
    }
    await until(() => h.settled.length === 3);
    expect(sentTo('s1')).toEqual(['m1', 'm2', 'm3']);
  });
});

describe('read sync and badges', () => {
  it('alert pushes carry the unread count; a read lowers it durably, never below 0; clear goes to the other sessions and a silent push to offline phones', async () => {
    h = harness();
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    h.openPc('u1', 'pc', 's1', 'gw1', false); // connected, idle
    h.presence('u1', 'pc', 's1', 'inactive', 'idle');
    h.route('u1', 'm1');
    h.route('u1', 'm2');
    await until(() => h.pushes.jobs.length === 2);
    expect(h.pushes.jobs.map((j) => j.badge)).toEqual([1, 2]);
    expect((await h.view('u1')).unread).toBe(2);
    h.openPhone('u1', 'tablet', 'android', 's3');
    h.read('u1', ['m1', 'm1', 'unknown'], 's3', 'tablet');
    await until(() => frames('frame').length === 1);
    expect(frames('frame')).toEqual([{ type: 'frame', sessionId: 's1', user: 'u1', frame: { type: 'clear', ids: ['m1', 'm1', 'unknown'], badge: 1 } }]);
    await until(() => h.pushes.jobs.length === 3);
    expect(h.pushes.jobs[2]).toMatchObject({ vendor: 'apns', device: 'iphone', token: 'apns-tok', clear: { ids: ['m1', 'm1', 'unknown'] }, badge: 1 });
    expect([...h.held.readStates.get('u1')!.unread]).toEqual(['m2']);
    h.read('u1', ['m2']);
    h.read('u1', ['m2']);
    await settle(h);
    expect((await h.view('u1')).unread).toBe(0);
  });

  it('silent clear pushes go out at most once per CLEAR_PUSH_INTERVAL_MS: a flood of reads is one round at once and one after, with every id and the latest badge', async () => {
    h = harness();
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    for (let i = 1; i <= 30; i++) h.route('u1', `m${i}`);
    await until(() => h.pushes.jobs.length === 30);
    const clears = () => h.pushes.jobs.filter((j) => j.clear !== undefined);
    h.read('u1', ['m1']);
    await until(() => clears().length === 1);
    for (let i = 2; i <= 30; i++) h.read('u1', [`m${i}`]);
    await settle(h);
    expect(clears()).toHaveLength(1); // the other 29 reads wait for the interval's end
    expect(clears()[0]).toMatchObject({ clear: { ids: ['m1'] }, badge: 29 });
    await vi.advanceTimersByTimeAsync(CLEAR_PUSH_INTERVAL_MS);
    await until(() => clears().length === 2);
    expect(clears()[1].clear!.ids).toEqual(Array.from({ length: 29 }, (_, i) => `m${i + 2}`));
    expect(clears()[1].badge).toBe(0);
    await vi.advanceTimersByTimeAsync(CLEAR_PUSH_INTERVAL_MS * 3);
    await settle(h);
    expect(clears()).toHaveLength(2); // nothing waits: no further round
    h.read('u1', ['m1']); // a read after a quiet interval pushes at once again
    await until(() => clears().length === 3);
  });

  it('policy "never" sends no clear push (section 4: "never" never uses vendor pushes), also for a round that waited out the interval', async () => {
    const stored = new Map<string, UserPolicy>();
    h = harness({ policies: { get: async (u) => stored.get(u) } });
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    const clears = () => h.pushes.jobs.filter((j) => j.clear !== undefined);
    for (let i = 1; i <= 3; i++) h.route('u1', `m${i}`);
    await until(() => h.pushes.jobs.length === 3); // when_away: alert pushes
    h.read('u1', ['m1']);
    await until(() => clears().length === 1); // the first round goes at once
    h.read('u1', ['m2']); // waits for the interval's end
    await settle(h);
    stored.set('u1', { mobile: 'never' });
    h.send({ type: 'policy_changed', user: 'u1' });
    await settle(h);
    await vi.advanceTimersByTimeAsync(CLEAR_PUSH_INTERVAL_MS);
    await settle(h);
    expect(clears()).toHaveLength(1);
    h.read('u1', ['m3']); // a read after a quiet interval under "never"
    await vi.advanceTimersByTimeAsync(CLEAR_PUSH_INTERVAL_MS * 2);
    await settle(h);
    expect(clears()).toHaveLength(1);
    expect((await h.view('u1')).unread).toBe(0); // the reads themselves count
  });

  it('a clear push that meets a dead token removes it, as a message push does (hasToken false, no more pushes to it)', async () => {
    h = harness();
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    h.route('u1', 'm1');
    await until(() => h.pushes.jobs.length === 1);
    h.pushes.auto = { outcome: 'dead_token', reason: 'apns 410 Unregistered' };
    h.read('u1', ['m1']);
    await until(() => h.registry.cleared.length === 1);
    expect(h.pushes.jobs[1]).toMatchObject({ device: 'iphone', clear: { ids: ['m1'] } });
    expect(h.registry.cleared).toEqual(['u1/iphone/apns-tok']);
    await settle(h);
    expect((await h.view('u1')).devices).toEqual([{ device: 'iphone', os: 'ios', online: false, hasToken: false }]);
    h.pushes.auto = { outcome: 'ok' };
    h.route('u1', 'm2');
    await until(() => h.settled.includes('m2'));
    expect(h.pushes.jobs).toHaveLength(2); // nothing pushed to the dead token: m2 is held
    expect(heldIds('u1')).toEqual(['m2']);
  });

  it('a push that fails for good (dead token, refusal) is held, not counted unread; the next session gets it', async () => {
    h = harness();
    await h.registry.put('u1', 'pixel', { os: 'android', token: 'dead-tok' });
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    h.pushes.auto = undefined;
    h.route('u1', 'm1');
    h.route('u1', 'm2');
    await until(() => h.pushes.jobs.length === 4);
    expect(h.pushes.jobs.map((j) => j.badge)).toEqual([1, 1, 2, 2]); // each push counts its own message
    // m1: one device takes it, so it reached the user; m2: both fail, so it did not.
    h.pushes.answer('m1:pixel', { outcome: 'dead_token', reason: 'UNREGISTERED' });
    h.pushes.answer('m1:iphone', { outcome: 'ok' });
    h.pushes.answer('m2:pixel', { outcome: 'dead_token', reason: 'UNREGISTERED' });
    h.pushes.answer('m2:iphone', { outcome: 'failed', reason: 'apns 400 BadTopic' });
    await until(() => h.settled.length === 2);
    expect(heldIds('u1')).toEqual(['m2']);
    const view = await h.view('u1');
    expect(view).toMatchObject({ held: 1, unread: 1 });
    expect((await h.decisions('u1'))[0]).toMatchObject({ id: 'm2', route: 'held', reason: 'push_failed' });
    expect((await h.metrics.messagesHeld.get()).values).toMatchObject([{ labels: { why: 'push_failed' }, value: 1 }]);
    h.openPc('u1', 'pc', 's1');
    await until(() => delivered().includes('m2'));
  });

  it('a read that arrives before the delivery keeps the message out of the badge', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.read('u1', ['m1']);
    h.route('u1', 'm1');
    h.route('u1', 'm2');
    await until(() => delivered().length === 2);
    expect((await h.view('u1')).unread).toBe(1);
  });

  it('cancels a pending push in the push delay window and drops a held message', async () => {
    h = harness({ pushDelayMs: 10_000 });
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    h.route('u1', 'm1');
    h.route('u2', 'h1');
    await until(() => heldIds('u2').length === 1);
    await settle(h);
    h.read('u1', ['m1']);
    h.read('u2', ['h1']);
    await until(() => h.settled.length === 2);
    await vi.advanceTimersByTimeAsync(10_000);
    await settle(h);
    expect(h.pushes.jobs.filter((j) => !j.clear)).toEqual([]);
    expect(heldIds('u2')).toEqual([]);
    expect(await h.decisions('u1')).toMatchObject([{ id: 'm1', targets: [{ device: 'iphone', via: 'apns', outcome: 'cancelled', detail: 'read' }] }]);
  });

  it('reads queued behind a slow durable write are stored together, not one disk sync each: a read flood cannot grow the mailbox without bound', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.openPc('u1', 'laptop', 's2');
    h.route('u1', 'm1');
    await until(() => delivered().length === 2);
    let syncs = 0;
    const release = gate();
    let firstWrite: Promise<void> | undefined = release.promise; // the first write waits for the disk
    const save = h.held.saveReads.bind(h.held);
    h.held.saveReads = (user, state, change, durable) => {
      if (durable) syncs++;
      const waited = firstWrite ?? Promise.resolve();
      firstWrite = undefined;
      return waited.then(() => save(user, state, change, durable));
    };
    h.read('u1', ['m1'], 's1', 'pc');
    await until(() => syncs === 1);
    // Meanwhile a client floods (pings between its reads): 300 reads of 500 ids each from two sessions.
    for (let i = 0; i < 300; i++) {
      h.read('u1', Array.from({ length: 500 }, (_, j) => `r${i}-${j}`), i % 2 ? 's2' : 's1', i % 2 ? 'laptop' : 'pc');
      h.send({ type: 'touch', user: 'u1', device: 'pc', sessionId: 's1', at: Date.now() });
    }
    release();
    await settle(h);
    // One write for the first read, then one per MAX_MERGED_READS (256) queued reads: 3, not 301.
    expect(syncs).toBe(3);
    expect([...h.held.readStates.get('u1')!.read]).toContain('r299-499');
    // Each session is told what the other one read, in frames no larger than a read frame.
    const clears = frames('frame').filter((f) => f.frame.type === 'clear');
    expect(clears.every((f) => f.frame.ids.length <= 500)).toBe(true);
    const clearedFor = (session: string) => new Set(clears.filter((f) => f.sessionId === session).flatMap((f) => f.frame.ids));
    expect(clearedFor('s1').has('r1-0') && !clearedFor('s1').has('r0-0')).toBe(true);
    expect(clearedFor('s2').has('r0-0') && !clearedFor('s2').has('r1-0')).toBe(true);
    expect(clearedFor('s2').size).toBe(150 * 500 + 1);
  });

  it('POST read (read_query) answers with the new badge once stored', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    await until(() => delivered().length === 1);
    expect(await h.router.answer({ type: 'read_query', user: 'u1', ids: ['m1'] })).toEqual({ type: 'read_done', unread: 0 });
    expect(frames('frame')).toMatchObject([{ sessionId: 's1', frame: { type: 'clear', ids: ['m1'], badge: 0 } }]);
  });
});
