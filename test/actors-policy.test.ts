import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { UserPolicy } from '../protocol/index.js';
import { harness, settle, until } from './support/actors-fakes.js';

/**
 * Issue 10 parts 2 and 5 in the user actor: the policy is read at load and again on `policy_changed`, applied to
 * routing, push delay, ack fallbacks and the push job's `silent` flag; a bot PC session never counts as active.
 */

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  vi.setSystemTime(new Date('2027-01-15T12:00:00Z')); // 13:00 in Europe/Berlin
});
afterEach(() => vi.useRealTimers());

function withPolicies(overrides: Parameters<typeof harness>[0] = {}) {
  const stored = new Map<string, UserPolicy>();
  const h = harness({ policies: { get: async (u) => stored.get(u) }, ...overrides });
  return { ...h, stored, setPolicy: (user: string, p: UserPolicy) => { stored.set(user, p); h.send({ type: 'policy_changed', user }); } };
}

type H = ReturnType<typeof withPolicies>;
let h: H | undefined;
afterEach(() => h?.router.stop());

describe('policy in the user actor', () => {
  it('reads the stored policy before the first message and shows it in the user view', async () => {
    h = withPolicies();
    h.stored.set('u1', { mobile: 'always', idleAfterSeconds: 90 });
    h.openPc('u1', 'pc', 's1');
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.route('u1', 'm1');
    await until(() => h!.pushes.jobs.length === 1 && h!.deliveries().length === 1);
    expect((await h.decisions('u1'))[0]).toMatchObject({ route: 'pc', reason: 'policy_always' });
    expect((await h.view('u1')).policy).toEqual({ mobile: 'always', idleAfterSeconds: 90 });
  });

  it('policy_changed makes the owner read the policy again (never: no vendor push, nothing reachable -> PC fallback)', async () => {
    h = withPolicies();
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.openPc('u1', 'pc', 's1', 'gw1', false);
    h.route('u1', 'm1');
    await until(() => h!.pushes.jobs.length === 1);
    h.setPolicy('u1', { mobile: 'never' });
    h.route('u1', 'm2');
    await until(() => h!.deliveries().length === 1);
    expect(h.pushes.jobs).toHaveLength(1);
    expect((await h.decisions('u1'))[0]).toMatchObject({ id: 'm2', route: 'pc_fallback', reason: 'policy_never', targets: [{ device: 'pc', via: 'pc' }] });
  });

  it('never lifted: what never held goes to the phone by push at once, not at the next session', async () => {
    h = withPolicies();
    h.stored.set('u1', { mobile: 'never' });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.route('u1', 'm1');
    await until(() => h!.settled.length === 1);
    expect((await h.decisions('u1'))[0]).toMatchObject({ id: 'm1', route: 'held', reason: 'policy_never' });
    expect(h.pushes.jobs).toHaveLength(0);
    h.setPolicy('u1', { mobile: 'always' }); // still never -> never would not replay; always does
    await until(() => h!.pushes.jobs.length === 1);
    expect(h.pushes.jobs[0]).toMatchObject({ jobId: 'm1:pixel', vendor: 'fcm' });
    await until(() => (h!.held.held.get('u1') ?? []).length === 0); // reached the user: no longer held
  });

  it('policy_changed sends the new idleAfterMs in a policy frame to each open PC session, on its gateway; phones none', async () => {
    h = withPolicies();
    h.openPc('u1', 'pc', 's1', 'gw1');
    h.openPc('u1', 'laptop', 's2', 'gw2');
    h.openPhone('u1', 'pixel', 'android', 's3', 'gw1');
    await settle(h);
    h.setPolicy('u1', { mobile: 'when_away', idleAfterSeconds: 300 });
    await until(() => h!.gateway.filter((g) => g.msg.type === 'frame').length === 2);
    await settle(h);
    expect(h.gateway.filter((g) => g.msg.type === 'frame')).toEqual([
      { node: 'gw1', msg: { type: 'frame', sessionId: 's1', user: 'u1', frame: { type: 'policy', idleAfterMs: 300_000 } } },
      { node: 'gw2', msg: { type: 'frame', sessionId: 's2', user: 'u1', frame: { type: 'policy', idleAfterMs: 300_000 } } },
    ]);
  });

  it('a policy_changed that leaves the idle threshold as it was sends no policy frame (it is not in section 2\'s table)', async () => {
    h = withPolicies();
    h.stored.set('u1', { mobile: 'when_away', idleAfterSeconds: 300 });
    h.openPc('u1', 'pc', 's1', 'gw1');
    await settle(h);
    h.setPolicy('u1', { mobile: 'always', idleAfterSeconds: 300 });
    await settle(h);
    h.setPolicy('u1', { mobile: 'never', idleAfterSeconds: 300 });
    await settle(h);
    expect(h.gateway.filter((g) => g.msg.type === 'frame')).toEqual([]);
    h.setPolicy('u1', { mobile: 'never', idleAfterSeconds: 120 }); // this one changes it: the only frame
    await until(() => h!.gateway.some((g) => g.msg.type === 'frame'));
    await settle(h);
    expect(h.gateway.filter((g) => g.msg.type === 'frame').map((g) => g.msg)).toEqual([
      { type: 'frame', sessionId: 's1', user: 'u1', frame: { type: 'policy', idleAfterMs: 120_000 } },
    ]);
  });

  it('always: a PC that does not ack falls back without pushing the phone a second time', async () => {
    h = withPolicies({ ackTimeoutMs: 1000 });
    h.stored.set('u1', { mobile: 'always' });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.openPc('u1', 'pc', 's1');
    h.route('u1', 'm1');
    await until(() => h!.pushes.jobs.length === 1);
    await vi.advanceTimersByTimeAsync(1500);
    await until(() => h!.settled.length === 1);
    expect(h.pushes.jobs).toHaveLength(1);
  });

  it('always: the PC turning active does not cancel a delayed push (the phone gets it too)', async () => {
    h = withPolicies();
    h.stored.set('u1', { mobile: 'always', pushDelaySeconds: 10 });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.openPc('u1', 'pc', 's1', 'gw1', false);
    h.route('u1', 'm1');
    await settle(h);
    h.presence('u1', 'pc', 's1', 'active');
    await settle(h);
    expect(h.pushes.jobs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(10_000);
    await until(() => h!.pushes.jobs.length === 1);
  });

  it('pushDelaySeconds overrides the node push delay for this user only', async () => {
    h = withPolicies({ pushDelayMs: 0 });
    h.stored.set('slow', { mobile: 'when_away', pushDelaySeconds: 30 });
    await h.registry.put('slow', 'pixel', { os: 'android', token: 't1' });
    await h.registry.put('fast', 'pixel', { os: 'android', token: 't2' });
    h.route('slow', 'm1');
    h.route('fast', 'm2');
    await until(() => h!.pushes.jobs.length === 1);
    expect(h.pushes.jobs[0].message.id).toBe('m2');
    await vi.advanceTimersByTimeAsync(29_000);
    expect(h.pushes.jobs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    await until(() => h!.pushes.jobs.length === 2);
  });

  it('quiet hours put `silent` on the push job; an urgent message goes out normally', async () => {
    h = withPolicies();
    h.stored.set('u1', { mobile: 'when_away', quietHours: { start: '12:30', end: '13:30', tz: 'Europe/Berlin' } });
    await h.registry.put('u1', 'iphone', { os: 'ios', token: 'a'.repeat(64) });
    h.route('u1', 'm1');
    h.route('u1', 'm2', { urgent: true });
    await until(() => h!.pushes.jobs.length === 2);
    expect(h.pushes.jobs.map((j) => [j.message.id, j.silent])).toEqual([['m1', true], ['m2', undefined]]);
    expect((await h.decisions('u1')).map((d) => d.reason)).toEqual(['no_pc', 'quiet_hours']);
  });

  it('quiet hours are judged when a delayed push goes out: a delay into them sends it silent, one out of them sends it normally', async () => {
    // 12:00Z now; quiet 12:30-18:00 UTC; a 3,600 s push delay.
    h = withPolicies();
    h.stored.set('into', { mobile: 'when_away', pushDelaySeconds: 3600, quietHours: { start: '12:30', end: '18:00', tz: 'UTC' } });
    h.stored.set('outof', { mobile: 'when_away', pushDelaySeconds: 3600, quietHours: { start: '11:00', end: '12:30', tz: 'UTC' } });
    await h.registry.put('into', 'pixel', { os: 'android', token: 't1' });
    await h.registry.put('outof', 'pixel', { os: 'android', token: 't2' });
    h.route('into', 'm1');
    h.route('outof', 'm2');
    await settle(h);
    expect(h.pushes.jobs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(3600_000);
    await until(() => h!.pushes.jobs.length === 2);
    expect(h.pushes.jobs.map((j) => [j.message.id, j.silent]).sort()).toEqual([['m1', true], ['m2', undefined]]);
    // The decisions record what went out.
    await until(() => h!.settled.length === 2);
    expect((await h.decisions('into'))[0].targets).toEqual([expect.objectContaining({ device: 'pixel', silent: true })]);
    expect((await h.decisions('outof'))[0].targets[0]).not.toHaveProperty('silent');
  });

  it('a policy turned "never" during the push delay sends no vendor push: the message is held', async () => {
    h = withPolicies();
    h.stored.set('u1', { mobile: 'when_away', pushDelaySeconds: 60 });
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.route('u1', 'm1');
    await settle(h);
    h.setPolicy('u1', { mobile: 'never', pushDelaySeconds: 60 });
    await settle(h);
    await vi.advanceTimersByTimeAsync(60_000);
    await until(() => h!.settled.length === 1);
    expect(h.pushes.jobs).toHaveLength(0);
    const [held, first] = await h.decisions('u1');
    expect(first.targets).toEqual([expect.objectContaining({ device: 'pixel', outcome: 'cancelled', detail: 'policy_never' })]);
    expect(held).toMatchObject({ id: 'm1', route: 'held', reason: 'policy_never' });
    expect(h.held.held.get('u1')!.map((x) => x.msg.id)).toEqual(['m1']);
  });
});

describe('bots and bridges (issue 10 part 5)', () => {
  it('a bot PC session reporting active does not keep the phone silent', async () => {
    h = withPolicies();
    await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
    h.send({ type: 'session_open', user: 'u1', device: 'bridge', kind: 'pc', bot: true, session: { node: 'gw1', id: 'b1' }, at: Date.now() });
    h.presence('u1', 'bridge', 'b1', 'active');
    h.route('u1', 'm1');
    await until(() => h!.pushes.jobs.length === 1);
    expect(h.deliveries()).toEqual([]);
    expect((await h.view('u1')).pc).toEqual({ state: 'inactive', reason: 'no_pc', sessions: 1 });
    // A human PC beside it still makes the user active.
    h.openPc('u1', 'desk', 's2');
    h.route('u1', 'm2');
    await until(() => h!.deliveries().length === 2);
    expect(h.deliveries().sort()).toEqual(['gw1:b1', 'gw1:s2']);
  });
});
