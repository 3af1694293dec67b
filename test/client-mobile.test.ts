import { describe, expect, it, vi } from 'vitest';
import { MobileSession, pageLifecycle, reactNativeLifecycle, type MobileSink, type PushTokenSource } from '../clients/mobile.js';
import type { ClientFrameV11, MobileState } from '../clients/wire.js';

/** The mobile core against a fake client core (the real node is in clients.int.test.ts). */

class FakeClient {
  state = 'open';
  presence: MobileState[] = [];
  sent: ClientFrameV11[] = [];
  stopped = false;
  private listeners = new Map<string, Set<(x: any) => void>>();
  setPresence(p: { state: MobileState }) { this.presence.push(p.state); }
  send(f: ClientFrameV11) { this.sent.push(f); }
  stop() { this.stopped = true; }
  on(event: string, l: (x: any) => void) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(l);
    return () => this.listeners.get(event)!.delete(l);
  }
  emit(event: string, x: unknown = {}) { for (const l of this.listeners.get(event) ?? []) l(x); }
  registers() { return this.sent.filter((f) => f.type === 'register'); }
}

function lifecycle(initial: MobileState) {
  let listener: ((s: MobileState) => void) | undefined;
  return { current: () => initial, onChange: (l: (s: MobileState) => void) => { listener = l; return () => { listener = undefined; }; }, set: (s: MobileState) => listener?.(s) };
}

function tokens(first: string) {
  let refresh: ((t: string) => void) | undefined;
  const source: PushTokenSource & { refresh(t: string): void } = {
    os: 'ios', app: 'chat', getToken: async () => first,
    onTokenRefresh: (l) => { refresh = l; return () => { refresh = undefined; }; },
    refresh: (t) => refresh?.(t),
  };
  return source;
}


/** A started session on a FakeClient whose register answers are recorded in `events` (refusal codes, 'registered'). */
async function startedWithEvents(token: string) {
  const c = new FakeClient();
  const push = tokens(token);
  const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), push);
  const events: string[] = [];
  s.on('registerRefused', (e) => events.push(e.code));
  s.on('registered', () => events.push('registered'));
  await s.start();
  return { c, push, s, events };
}
describe('MobileSession', () => {
  it('presence from the lifecycle; the token registered at launch and on refresh', async () => {
    const c = new FakeClient();
    const life = lifecycle('background');
    const push = tokens('aa'.repeat(32));
    const s = new MobileSession(c as unknown as MobileSink, life, push);
    await s.start();
    expect(c.presence).toEqual(['background']);
    life.set('foreground');
    expect(c.presence).toEqual(['background', 'foreground']);
    expect(c.registers()).toEqual([{ type: 'register', os: 'ios', token: 'aa'.repeat(32), app: 'chat' }]);
    push.refresh('bb'.repeat(32));
    expect(c.registers().at(-1)).toMatchObject({ token: 'bb'.repeat(32) });
  });

  it('a register not answered before a reconnect is sent again after the welcome; an answered one is not', async () => {
    const c = new FakeClient();
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), tokens('t1'));
    await s.start();
    c.emit('welcome');
    expect(c.registers()).toHaveLength(2);
    c.emit('registered');
    c.emit('welcome');
    expect(c.registers()).toHaveLength(2);
  });

  it('a refresh while the first register is unanswered: the first answer does not count for the new token', async () => {
    const c = new FakeClient();
    const push = tokens('t1');
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), push);
    await s.start();
    push.refresh('t2');
    c.emit('registered'); // answers t1 (the gateway answers in order); t2 is not stored yet
    c.emit('welcome');    // the connection dropped before t2's answer
    expect(c.registers().map((f) => f.type === 'register' && f.token)).toEqual(['t1', 't2', 't2']);
    c.emit('registered');
    c.emit('welcome');
    expect(c.registers()).toHaveLength(3);
  });

  it('launched while not connected: the token goes out once, after the first welcome', async () => {
    const c = new FakeClient();
    c.state = 'connecting';
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), tokens('t1'));
    await s.start();
    expect(c.registers()).toHaveLength(0);
    c.state = 'open';
    c.emit('welcome');
    expect(c.registers()).toHaveLength(1);
  });

  it('logOut sends unregister, resolves on unregistered, stops the client and follows nothing more', async () => {
    const c = new FakeClient();
    const life = lifecycle('foreground');
    const s = new MobileSession(c as unknown as MobileSink, life, tokens('t1'));
    await s.start();
    c.emit('registered'); // the launch's register answered
    const out = s.logOut();
    expect(c.sent.at(-1)).toEqual({ type: 'unregister' });
    c.emit('unregistered');
    await out;
    expect(c.stopped).toBe(true);
    life.set('background');
    expect(c.presence).toEqual(['foreground']);
  });

  it('logOut rejects on an error frame (a server without `unregister`), the client stopped anyway', async () => {
    const c = new FakeClient();
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), tokens('t1'));
    await s.start();
    c.emit('registered');
    const out = s.logOut();
    c.emit('serverError', { type: 'error', code: 'unknown_frame', message: 'unknown frame type: "unregister"' });
    await expect(out).rejects.toMatchObject({ code: 'unregister_refused', message: expect.stringMatching(/unregister refused: unknown_frame/) });
    expect(c.stopped).toBe(true);
  });

  it('a refused register is told (registerRefused) and not taken for the answer of a logOut that follows', async () => {
    const c = new FakeClient();
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), tokens('bad'));
    const refused: { code: string; message: string }[] = [];
    const stored: unknown[] = [];
    s.on('registerRefused', (e) => refused.push(e));
    s.on('registered', (e) => stored.push(e));
    await s.start();
    const out = s.logOut(); // register and unregister both unanswered, answered in order
    c.emit('serverError', { type: 'error', code: 'invalid_field', message: 'token must be a PushSubscription whose endpoint is on an allowed push service host' });
    expect(refused).toMatchObject([{ code: 'register_refused', message: expect.stringContaining('push token not stored: invalid_field') }]);
    c.emit('unregistered');
    await out; // resolves: the unregister was accepted
    expect(stored).toEqual([]);
  });

  it('register answers follow the frames: refused t1, stored t2; an error of another frame is not taken for one', async () => {
    const { c, push, s, events } = await startedWithEvents('t1');
    push.refresh('t2');
    c.emit('serverError', { type: 'error', code: 'rate_limited', message: 'slow down' }); // not a registration answer
    c.emit('serverError', { type: 'error', code: 'store_failed', message: 'push token not stored' }); // t1
    c.emit('registered'); // t2
    expect(events).toEqual(['register_refused', 'registered']);
    c.emit('welcome'); // t2 is stored: nothing sent again
    expect(c.registers()).toHaveLength(2);
  });

  it('logOut while not connected: the queued unregister goes out with the welcome once; one lost in a drop goes again', async () => {
    const c = new FakeClient();
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'));
    c.state = 'connecting';
    const out = s.logOut();
    c.state = 'open';
    c.emit('welcome'); // the client sent its queue (the unregister) before this
    expect(c.sent.filter((f) => f.type === 'unregister')).toHaveLength(1);
    c.emit('welcome'); // dropped before the answer: sent again
    expect(c.sent.filter((f) => f.type === 'unregister')).toHaveLength(2);
    c.emit('unregistered');
    await out;
  });

  it('logOut while offline, then the network returns: only the unregister goes out, never the pending register', async () => {
    const c = new FakeClient();
    c.state = 'connecting';
    const push = tokens('t1');
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), push);
    await s.start(); // launched offline: the register waits for a welcome
    const out = s.logOut();
    push.refresh('t2'); // a refresh after the log-out registers nothing either
    s.register('t3');
    c.state = 'open';
    c.sent.push({ type: 'unregister' }); // the client flushes its queue before it emits welcome
    c.emit('welcome');
    c.emit('welcome'); // a drop before the answer: the unregister again, still no register
    expect(c.sent.map((f) => f.type)).toEqual(['unregister', 'unregister', 'unregister']);
    c.emit('unregistered');
    await out;
    expect(c.registers()).toEqual([]);
  });

  it('logOut while the launch is still fetching the token: the token that arrives later is not registered', async () => {
    const c = new FakeClient();
    let give!: (t: string) => void;
    const push: PushTokenSource = { os: 'android', getToken: () => new Promise((r) => { give = r; }), onTokenRefresh: () => () => {} };
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), push);
    const started = s.start();
    const out = s.logOut();
    give('late-token');
    await started;
    c.emit('unregistered');
    await out;
    expect(c.registers()).toEqual([]);
  });

  it('logOut offline rejects connection_lost after timeoutMs ms when no connection came; the client is stopped', async () => {
    vi.useFakeTimers();
    try {
      const c = new FakeClient();
      c.state = 'connecting';
      const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), tokens('t1'));
      const out = s.logOut(3000);
      const settled = expect(out).rejects.toMatchObject({ code: 'connection_lost', message: expect.stringContaining('3000 ms') });
      await vi.advanceTimersByTimeAsync(2999);
      expect(c.stopped).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await settled;
      expect(c.stopped).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('logOut(timeoutMs) refuses NaN, a negative, Infinity or a non-number (invalid_argument): nothing done, still logged in', async () => {
    vi.useFakeTimers();
    try {
      const { c, push, s } = await startedWithEvents('t1');
      c.emit('registered');
      // How a logOut call stands once the timers due now have run: 'pending', 'resolved' or its error.
      const outcome = async (p: Promise<void>) => {
        let got: unknown = 'pending';
        p.then(() => { got = 'resolved'; }, (e) => { got = e; });
        await vi.advanceTimersByTimeAsync(0);
        return got;
      };
      for (const bad of [NaN, -1, Infinity, 2 ** 31, '5000']) {
        expect(await outcome(s.logOut(bad as number))).toMatchObject({
          name: 'ClientError', code: 'invalid_argument', message: expect.stringMatching(/^logOut\(timeoutMs\): timeoutMs must be a number of milliseconds from 0 to 2147483647/),
        });
      }
      expect(await outcome(s.logOut(-5))).toMatchObject({ message: expect.stringMatching(/not -5; not logged out$/) });
      expect(c.sent.filter((f) => f.type === 'unregister')).toEqual([]);
      expect(c.stopped).toBe(false);
      push.refresh('t2'); // still logged in: a refresh registers
      expect(c.registers().at(-1)).toMatchObject({ token: 't2' });
      // A good one still logs out; 0 is a good one (no wait).
      const out = s.logOut(0);
      const settled = expect(out).rejects.toMatchObject({ code: 'connection_lost' });
      await vi.advanceTimersByTimeAsync(0);
      await settled;
      expect(c.stopped).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('an error frame with a code neither frame can get (a bad read: invalid_request) settles no register or unregister', async () => {
    const { c, push, s, events } = await startedWithEvents('t1');
    c.emit('serverError', { type: 'error', code: 'unknown_frame', message: '"typo"' }); // an unregister may get it, a register not
    c.emit('registered');
    expect(events).toEqual(['registered']);
    const out = s.logOut();
    c.emit('serverError', { type: 'error', code: 'invalid_request', message: 'ids[0] must be a string of 1-128 characters' });
    c.emit('serverError', { type: 'error', code: 'invalid_field', message: 'token must be …' }); // a register's code, not an unregister's
    c.emit('unregistered');
    await out; // resolves: the unregister was accepted
  });

  it('a register the server would refuse for its shape (an os that is no mobile OS) is not sent: registerRefused says so', async () => {
    const c = new FakeClient();
    const push = { ...tokens('t1'), os: 'symbian' } as unknown as PushTokenSource;
    const s = new MobileSession(c as unknown as MobileSink, lifecycle('foreground'), push);
    const refused: string[] = [];
    s.on('registerRefused', (e) => refused.push(e.message));
    await s.start();
    expect(c.registers()).toEqual([]);
    expect(refused).toEqual([expect.stringMatching(/^push token not sent: os must be one of ios, android, harmony, web/)]);
    const out = s.logOut();
    c.emit('serverError', { type: 'error', code: 'store_failed', message: 'push token not removed' });
    await expect(out).rejects.toMatchObject({ code: 'unregister_refused' }); // the unregister's own refusal
  });

  it('lifecycles: React Native AppState (active = foreground) and page visibility', () => {
    let rn: ((s: string) => void) | undefined;
    const AppState = { currentState: 'inactive', addEventListener: (_: 'change', l: (s: string) => void) => { rn = l; return { remove: () => { rn = undefined; } }; } };
    const l1 = reactNativeLifecycle(AppState);
    expect(l1.current()).toBe('background');
    const seen: MobileState[] = [];
    const off = l1.onChange((s) => seen.push(s));
    rn!('active');
    rn!('background');
    off();
    expect(rn).toBeUndefined();
    expect(seen).toEqual(['foreground', 'background']);

    let vis: (() => void) | undefined;
    const doc = { visibilityState: 'visible', addEventListener: (_: 'visibilitychange', l: () => void) => { vis = l; }, removeEventListener: () => { vis = undefined; } };
    const l2 = pageLifecycle(doc);
    expect(l2.current()).toBe('foreground');
    const seen2: MobileState[] = [];
    l2.onChange((s) => seen2.push(s));
    doc.visibilityState = 'hidden';
    vis!();
    expect(seen2).toEqual(['background']);
  });
});
