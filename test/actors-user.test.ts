import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { harness, settle, until } from './support/actors-fakes.js';

/** A user actor's timers in virtual time: ack timeout, presence TTL, push delay (PROTOCOL.md section 4). */

beforeEach(() => {
  // setImmediate stays real: the helpers wait for mailboxes through it.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

type H = ReturnType<typeof harness>;
let h: H;
afterEach(() => h?.router.stop());

/** `until` for a condition that needs a query of the actor. */
async function untilView(user: string, cond: (view: Awaited<ReturnType<H['view']>>) => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond(await h.view(user))) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('condition not reached');
}

const outcomes = async (user: string, id: string) =>
  (await h.decisions(user)).filter((d) => d.id === id).reverse().map((d) => `${d.route}/${d.reason}: ${d.targets.map((t) => `${t.device}:${t.via}=${t.outcome ?? '…'}`).join(',')}`);

describe('user actor', () => {
  it('claim 3: PC active -> delivered to the PC, settled on ack', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1', { from: 'bob', title: 'T' });
    await until(() => h.deliveries().length === 1);
    expect(h.gateway[0].msg).toEqual({ type: 'deliver', sessionId: 's1', user: 'u1', frame: { type: 'message', id: 'm1', from: 'bob', title: 'T', text: 'hello', ts: Date.now() } });
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    expect(await outcomes('u1', 'm1')).toEqual(['pc/pc_active: pc:pc=acked']);
    expect(h.routed).toMatchObject([{ id: 'm1', route: 'pc', user: 'u1', node: 'n1' }]);
  });

  it('ack timeout: a PC not acked falls back to the mobile path (foreground phone directly, offline phone by vendor)', async () => {
    h = harness();
    await h.registry.put('u1', 'pixel', { os: 'android', token: 'fcm-tok' });
    h.openPc('u1', 'pc', 's1');
    h.openPhone('u1', 'iphone', 'ios', 's2');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    await vi.advanceTimersByTimeAsync(4999);
    expect(h.deliveries()).toEqual(['gw1:s1']);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => h.deliveries().length === 2 && h.pushes.jobs.length === 1);
    expect(h.deliveries()).toEqual(['gw1:s1', 'gw2:s2']);
    expect(h.pushes.jobs[0]).toMatchObject({ jobId: 'm1:pixel', vendor: 'fcm', token: 'fcm-tok', device: 'pixel', user: 'u1' });
    h.ack('u1', 'iphone', 's2', 'm1');
    await until(() => h.settled.length === 1);
    expect(await outcomes('u1', 'm1')).toEqual(['pc/pc_active: pc:pc=ack_timeout', 'mobile/ack_timeout: pixel:fcm=ok,iphone:mobile=acked']);
    expect((await h.metrics.ackTimeouts.get()).values).toMatchObject([{ labels: { kind: 'pc' }, value: 1 }]);
  });

  it('ack timeout: a mobile direct delivery not acked falls back to its vendor push', async () => {
    h = harness();
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'apns-tok' });
    h.openPhone('u1', 'iphone', 'ios', 's2');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.pushes.jobs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(5000);
    await until(() => h.settled.length === 1);
    expect(h.pushes.jobs).toMatchObject([{ vendor: 'apns', token: 'apns-tok' }]);
    expect(await outcomes('u1', 'm1')).toEqual(['mobile/no_pc: iphone:mobile=ack_timeout', 'mobile/ack_timeout: iphone:apns=ok']);
  });

  it('presence TTL: a silent active PC turns stale, a ping makes it active again', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.openPhone('u1', 'iphone', 'ios', 's2');
    await settle(h);
    await vi.advanceTimersByTimeAsync(90_001);
    expect((await h.view('u1')).pc).toEqual({ state: 'inactive', reason: 'stale', sessions: 1 });
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw2:s2']);
    h.send({ type: 'touch', user: 'u1', device: 'pc', sessionId: 's1', at: Date.now() });
    h.route('u1', 'm2');
    await until(() => h.deliveries().length === 2);
    expect(h.deliveries()[1]).toBe('gw1:s1');
    expect((await h.view('u1')).pc).toEqual({ state: 'active', sessions: 1 });
  });

  it('presence TTL: read frames refresh the PC session as any frame does (section 2), an HTTP read does not', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.openPhone('u1', 'iphone', 'ios', 's2');
    await settle(h);
    for (let i = 0; i < 4; i++) {
      await vi.advanceTimersByTimeAsync(60_000); // each under the 90 s TTL, four together well past it
      h.read('u1', [`seen${i}`], 's1', 'pc');
    }
    await settle(h);
    expect((await h.view('u1')).pc).toEqual({ state: 'active', sessions: 1 });
    for (let i = 0; i < 2; i++) {
      await vi.advanceTimersByTimeAsync(60_000);
      h.read('u1', [`http${i}`]); // POST …/read: no session behind it
    }
    await settle(h);
    expect((await h.view('u1')).pc).toEqual({ state: 'inactive', reason: 'stale', sessions: 1 });
  });

  it('push delay: the vendor push goes out only after the delay', async () => {
    h = harness({ pushDelayMs: 1000 });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.openPc('u1', 'pc', 's1');
    h.presence('u1', 'pc', 's1', 'inactive', 'idle');
    h.route('u1', 'm1');
    await settle(h);
    await vi.advanceTimersByTimeAsync(999);
    expect(h.pushes.jobs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => h.settled.length === 1);
    expect(h.pushes.jobs).toHaveLength(1);
    expect(h.deliveries()).toEqual([]);
  });

  it('push delay: a PC turning active cancels the push and gets the message instead', async () => {
    h = harness({ pushDelayMs: 1000 });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.openPc('u1', 'pc', 's1');
    h.presence('u1', 'pc', 's1', 'inactive', 'screen_locked');
    h.route('u1', 'm1');
    await settle(h);
    await vi.advanceTimersByTimeAsync(500);
    h.presence('u1', 'pc', 's1', 'active');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw1:s1']);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.pushes.jobs).toHaveLength(0);
    expect(await outcomes('u1', 'm1')).toEqual(['mobile/screen_locked: pixel:fcm=cancelled', 'pc/pc_active: pc:pc=acked']);
  });

  it('a duplicate route is not delivered twice; one seen before is settled at once', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    h.route('u1', 'm1'); // still in flight
    await settle(h);
    expect(h.deliveries()).toEqual(['gw1:s1']);
    expect(h.settled).toEqual([]);
    h.ack('u1', 'pc', 's1', 'm1');
    await until(() => h.settled.length === 1);
    h.route('u1', 'm1'); // redelivered after it finished
    await until(() => h.settled.length === 2);
    expect(h.settled).toEqual(['m1', 'm1']);
    expect(h.deliveries()).toEqual(['gw1:s1']);
  });

  it('undeliverable (ttlSeconds 0, nobody reachable) settles at once; a dead token is cleared in the registry and the view', async () => {
    h = harness();
    h.route('u0', 'm0', { ttlSeconds: 0 });
    await until(() => h.settled.length === 1);
    expect(h.routed[0]).toMatchObject({ route: 'undeliverable', reason: 'no_pc', targets: [] });

    h.pushes.auto = { outcome: 'dead_token', reason: 'Unregistered' };
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'old' });
    h.route('u1', 'm1');
    await until(() => h.settled.length === 2);
    expect(h.registry.cleared).toEqual(['u1/iphone/old']);
    expect((await h.view('u1')).devices).toEqual([{ device: 'iphone', os: 'ios', online: false, hasToken: false }]);
    expect(await outcomes('u1', 'm1')).toEqual(['mobile/no_pc: iphone:apns=dead_token', 'held/push_failed: ']); // reached nobody: held
  });

  it('a failed push is final with the vendor reason; the outcome comes back through the mailbox', async () => {
    h = harness();
    h.pushes.auto = undefined;
    h.send({ type: 'device_put', user: 'u1', device: 'tab', os: 'harmony', token: 'h' });
    h.route('u1', 'm1');
    await until(() => h.pushes.jobs.length === 1);
    expect(h.settled).toEqual([]);
    h.pushes.answer('m1:tab', { outcome: 'retry', reason: 'throttled' });
    await until(() => h.settled.length === 1);
    const [held, pushed] = await h.decisions('u1');
    expect(pushed.targets).toEqual([{ device: 'tab', via: 'hms', outcome: 'failed', detail: 'throttled' }]);
    expect(held).toMatchObject({ id: 'm1', route: 'held', reason: 'push_failed', targets: [] }); // nothing missed: held
  });

  it('claim 4: a PC that has reported nothing yet is not active, shown as "unreported"', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1', 'gw1', false);
    h.openPhone('u1', 'iphone', 'ios', 's2');
    expect((await h.view('u1')).pc).toEqual({ state: 'inactive', reason: 'unreported', sessions: 1 });
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw2:s2']);
  });

  it('section 2: a second session of the same device replaces the first (4409); a stale close keeps the new one', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1', 'gw1');
    h.openPc('u1', 'pc', 's2', 'gw2');
    h.send({ type: 'session_close', user: 'u1', device: 'pc', sessionId: 's1', at: Date.now() });
    await settle(h);
    expect(h.gateway).toEqual([{ node: 'gw1', msg: { type: 'close_session', sessionId: 's1', code: 4409, reason: 'replaced' } }]);
    expect((await h.view('u1')).pc).toEqual({ state: 'active', sessions: 1 });
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw2:s2']);
  });

  it('section 2: the same device id under the other kind is the same device: the newer connection replaces it (4409)', async () => {
    h = harness();
    h.openPhone('u1', 'd1', 'android', 's1');
    h.openPc('u1', 'd1', 's2', 'gw2');
    await settle(h);
    expect(h.gateway).toEqual([{ node: 'gw2', msg: { type: 'close_session', sessionId: 's1', code: 4409, reason: 'replaced' } }]);
    const v = await h.view('u1');
    expect(v.pc).toEqual({ state: 'active', sessions: 1 });
    expect(v.devices.find((d) => d.device === 'd1')?.online).toBe(false);
    // And back: a phone connection of d1 replaces the PC session.
    h.openPhone('u1', 'd1', 'android', 's3');
    await settle(h);
    expect(h.gateway.at(-1)).toEqual({ node: 'gw2', msg: { type: 'close_session', sessionId: 's2', code: 4409, reason: 'replaced' } });
    expect((await h.view('u1')).pc).toMatchObject({ state: 'inactive', sessions: 0 });
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    expect(h.deliveries()).toEqual(['gw2:s3']);
  });

  it('section 2/4: a replaced session counts as closed: what it never acked times out at once (its gateway died), not after 5 s', async () => {
    h = harness();
    h.openPc('u1', 'pc', 's1', 'gw1');
    h.route('u1', 'm1');
    h.route('u1', 'm2');
    await until(() => h.deliveries().length === 2);
    // gw1 died (no session_close ever comes from it); the PC reconnects through gw2. No virtual time passes.
    h.openPc('u1', 'pc', 's2', 'gw2', false);
    await until(() => h.deliveries().length === 4);
    expect(h.deliveries()).toEqual(['gw1:s1', 'gw1:s1', 'gw2:s2', 'gw2:s2']);
    expect((await h.metrics.ackTimeouts.get()).values).toMatchObject([{ labels: { kind: 'pc' }, value: 2 }]);
    h.ack('u1', 'pc', 's2', 'm1');
    h.ack('u1', 'pc', 's2', 'm2');
    await until(() => h.settled.length === 2);
    // New decisions (section 4: at most once per decision): nothing left to try -> held, then routed again at once to
    // the session that opened (it has not reported presence on its new connection, and there is no phone).
    expect(await outcomes('u1', 'm1')).toEqual(['pc/pc_active: pc:pc=ack_timeout', 'held/ack_timeout: ', 'pc_fallback/unreported: pc:pc=acked']);
  });

  it('section 4: an ack timeout that fired for a replaced delivery does not time out the fresh one to the same device', async () => {
    h = harness();
    h.openPhone('u1', 'iphone', 'ios', 's1', 'gw1');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    // The phone (no push token) reconnects through gw2 just as m1's ack timeout on s1 fires: both wait in the
    // actor's mailbox, the session first. The replaced session counts as closed: m1 times out, nothing is left to try
    // (no token), so it is held, and routed again at once to the session that opened (s2). Then the old timeout, for
    // the same message and device, comes in.
    h.openPhone('u1', 'iphone', 'ios', 's2', 'gw2');
    vi.advanceTimersByTime(5000);
    await until(() => h.deliveries().length === 2);
    await settle(h);
    expect(h.deliveries()).toEqual(['gw1:s1', 'gw2:s2']);
    expect((await h.metrics.ackTimeouts.get()).values).toMatchObject([{ labels: { kind: 'mobile' }, value: 1 }]);
    // The delivery to s2 has its own full ack timeout.
    await vi.advanceTimersByTimeAsync(4999);
    expect((await h.metrics.ackTimeouts.get()).values).toMatchObject([{ labels: { kind: 'mobile' }, value: 1 }]);
    h.ack('u1', 'iphone', 's2', 'm1');
    await until(() => h.settled.length === 1);
    expect(await outcomes('u1', 'm1')).toEqual(['mobile/no_pc: iphone:mobile=ack_timeout', 'held/ack_timeout: ', 'mobile/no_pc: iphone:mobile=acked']);
  });

  it('section 4: a foreground phone with no token that never acks is not sent the message again at its ack timeout: it is held, goes to the still open session once more, then waits for a sign of life', async () => {
    h = harness();
    h.openPhone('u1', 'iphone', 'ios', 's1');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    await vi.advanceTimersByTimeAsync(5000);
    // "falls back: a mobile device to its vendor push ... with nothing left, the message is held": no direct resend.
    await untilView('u1', (v) => v.held === 1);
    expect(h.deliveries()).toEqual(['gw2:s1']);
    expect(await outcomes('u1', 'm1')).toEqual(['mobile/no_pc: iphone:mobile=ack_timeout', 'held/ack_timeout: ']);
    // Its session is still open (a frame lost between owner and gateway looks just like this): one more ack timeout
    // later, what is held is routed to it again, as a held message.
    await vi.advanceTimersByTimeAsync(5000);
    await until(() => h.deliveries().length === 2);
    expect(await outcomes('u1', 'm1')).toEqual(['mobile/no_pc: iphone:mobile=ack_timeout', 'held/ack_timeout: ', 'mobile/no_pc: iphone:mobile=…']);
    // Not acked again: held again, and no timer sends it a third time.
    await vi.advanceTimersByTimeAsync(5000);
    await untilView('u1', (v) => v.held === 1);
    await vi.advanceTimersByTimeAsync(30_000);
    await settle(h);
    expect(h.deliveries()).toEqual(['gw2:s1', 'gw2:s1']);
    expect(h.pushes.jobs).toHaveLength(0);
    // A ping from that session: it is alive after all, so what is held goes to it again.
    h.send({ type: 'touch', user: 'u1', device: 'iphone', sessionId: 's1', at: Date.now() });
    await until(() => h.deliveries().length === 3);
    h.ack('u1', 'iphone', 's1', 'm1');
    await untilView('u1', (v) => v.held === 0);
  });

  it('section 4: a message held after an ack timeout on a session that closed since waits for the next session, no timer', async () => {
    h = harness();
    h.openPhone('u1', 'iphone', 'ios', 's1');
    h.route('u1', 'm1');
    await until(() => h.deliveries().length === 1);
    h.close('u1', 'iphone', 's1'); // counted as timed out at once (section 4)
    await untilView('u1', (v) => v.held === 1);
    await vi.advanceTimersByTimeAsync(60_000);
    await settle(h);
    expect(h.deliveries()).toEqual(['gw2:s1']);
    h.openPhone('u1', 'iphone', 'ios', 's2');
    await until(() => h.deliveries().length === 2);
    expect(h.deliveries()).toEqual(['gw2:s1', 'gw2:s2']);
  });

  it('section 4: a message held while the only phone was in the background is routed when it comes back to the foreground', async () => {
    h = harness();
    h.openPhone('u1', 'iphone', 'ios', 's1');
    h.presence('u1', 'iphone', 's1', 'background');
    h.route('u1', 'm1');
    await until(() => h.settled.length === 1); // held durably: its ingress copy is settled
    await settle(h);
    expect(h.deliveries()).toEqual([]);
    expect((await h.view('u1')).held).toBe(1);
    h.presence('u1', 'iphone', 's1', 'foreground');
    await until(() => h.deliveries().length === 1);
    h.ack('u1', 'iphone', 's1', 'm1');
    await untilView('u1', (v) => v.held === 0);
    expect(await outcomes('u1', 'm1')).toEqual(['held/no_pc: ', 'mobile/no_pc: iphone:mobile=acked']);
  });

  it('a backgrounded phone gets the vendor push, not a direct delivery', async () => {
    h = harness();
    h.send({ type: 'device_put', user: 'u1', device: 'iphone', os: 'ios', token: 'a' });
    h.openPhone('u1', 'iphone', 'ios', 's2');
    h.presence('u1', 'iphone', 's2', 'background');
    h.route('u1', 'm1');
    await until(() => h.settled.length === 1);
    expect(h.deliveries()).toEqual([]);
    expect(h.pushes.jobs).toMatchObject([{ vendor: 'apns', token: 'a' }]);
    expect((await h.view('u1')).devices).toEqual([{ device: 'iphone', os: 'ios', online: false, hasToken: true }]);
  });
});
