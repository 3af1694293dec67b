import { describe, expect, it } from 'vitest';
import { explain, standInVendor, type AnyDecision, type PhoneMode, type TrailContext } from '../pages/playground-trail.js';

/**
 * Issue 12, the playground's decision trail and stand-in tray (pages/playground-trail.js), for every route of
 * PROTOCOL section 4. With no credentials for the phone's vendor the node names no vendor target (section 4: "not
 * reachable by push"), so the page infers the push it would have sent from its own phone pane.
 */
const LOCKED_AT = Date.UTC(2026, 10, 30, 10, 42, 1);
const AT = LOCKED_AT + 60_000;
const NONE = { apns: false, fcm: false, hms: false, webpush: false };

function ctx(over: Partial<TrailContext> & { mode?: PhoneMode } = {}): TrailContext {
  const { mode = 'offline', ...rest } = over;
  return {
    vendors: NONE, phoneOs: 'android', phoneRegistered: true,
    phoneModeAt: () => mode,
    pcSince: (_at, reason) => (reason === 'screen_locked' ? LOCKED_AT : undefined),
    ackedAt: (device, id) => (device === 'pc' && id === 'm1' ? AT + 3 : undefined),
    ...rest,
  };
}
const decision = (over: Partial<AnyDecision>): AnyDecision => ({ id: 'm1', route: 'held', reason: 'screen_locked', targets: [], at: AT, ...over });
const since = new Date(LOCKED_AT).toTimeString().slice(0, 8);

describe('playground trail: the stand-in push for an unconfigured vendor', () => {
  it('held: the tray gets a stand-in FCM push, the trail says it is held until the phone is back', () => {
    expect(explain(decision({ route: 'held' }), ctx())).toEqual({
      words: `PC screen locked since ${since} → phone offline → FCM not configured here → held until the phone is back`,
      tray: { vendor: 'fcm', configured: false },
    });
  });

  it('undeliverable (no PC, nothing reachable): stand-in APNs push for an iPhone in the background', () => {
    expect(explain(decision({ route: 'undeliverable', reason: 'no_pc' }), ctx({ phoneOs: 'ios', mode: 'background' }))).toEqual({
      words: 'no PC connected → phone in the background → APNs not configured here → nothing reachable: undeliverable',
      tray: { vendor: 'apns', configured: false },
    });
  });

  it('pc_fallback: the locked PC gets it instead, and the tray still shows the stand-in', () => {
    const d = decision({ route: 'pc_fallback', targets: [{ device: 'pc', via: 'pc', outcome: 'acked' }] });
    expect(explain(d, ctx())).toEqual({
      words: `PC screen locked since ${since} → phone offline → FCM not configured here → delivered to the PC instead, acked in 3 ms`,
      tray: { vendor: 'fcm', configured: false },
    });
  });

  it('no stand-in without a stored token, with the phone in the foreground, with the vendor configured, or by policy', () => {
    const d = decision({ route: 'pc_fallback', targets: [{ device: 'pc', via: 'pc', outcome: 'acked' }] });
    expect(standInVendor(d, ctx({ phoneRegistered: false }))).toBeUndefined();
    expect(standInVendor(d, ctx({ mode: 'foreground' }))).toBeUndefined();
    expect(standInVendor(d, ctx({ vendors: { ...NONE, fcm: true } }))).toBeUndefined();
    expect(standInVendor({ ...d, reason: 'policy_never' }, ctx())).toBeUndefined();
    expect(standInVendor(d, ctx({ phoneOs: 'harmony' }))).toBe('hms');
    const words = explain(d, ctx({ phoneRegistered: false }));
    expect(words).toEqual({ words: `PC screen locked since ${since} → no phone reachable → delivered to the PC instead, acked in 3 ms`, tray: undefined });
    expect(explain(decision({ route: 'held', reason: 'no_pc' }), ctx({ phoneRegistered: false })).words).toBe('no PC connected → held until the user is reachable');
  });
});

describe('playground trail: routes with targets', () => {
  it('a configured vendor: the real push and its outcome, no stand-in mark', () => {
    const d = decision({ route: 'mobile', reason: 'no_pc', targets: [{ device: 'phone', via: 'fcm', outcome: 'ok' }] });
    expect(explain(d, ctx({ vendors: { ...NONE, fcm: true } }))).toEqual({
      words: 'no PC connected → phone offline → FCM push, accepted by the vendor',
      tray: { vendor: 'fcm', configured: true, outcome: 'ok' },
    });
  });

  it('PC active and a phone in the foreground read as before', () => {
    expect(explain(decision({ route: 'pc', reason: 'pc_active', targets: [{ device: 'pc', via: 'pc', outcome: 'acked' }] }), ctx()).words)
      .toBe('PC active → delivered to the PC, acked in 3 ms');
    expect(explain(decision({ route: 'mobile', targets: [{ device: 'phone', via: 'mobile' }] }), ctx({ mode: 'foreground' })).words)
      .toBe(`PC screen locked since ${since} → phone in foreground → delivered directly, waiting for the outcome`);
  });
});
