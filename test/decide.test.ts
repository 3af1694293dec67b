import { describe, expect, it } from 'vitest';
import { decide, decideFallback, type UnackedDelivery } from '../actors/decide.js';
import type { MobileDevice, PcSession, UserState } from '../actors/user-state.js';
import type { ChatMessage, DecisionReason, Route, UserPolicy } from '../protocol/index.js';

/** The patent claims (SEED-claims.txt) and PROTOCOL.md section 4 as one table over the pure routing rule. */

const NOW = 1_000_000;
const TTL = 90_000;
const MSG: ChatMessage = { id: 'm1', to: 'u', text: 'hi', acceptedAt: NOW - 5 };

const pc = (device: string, presence: PcSession['presence'], extra: Partial<PcSession> = {}): PcSession => ({
  sessionId: `s-${device}`, device, node: 'gw1', presence, lastSeen: NOW - 1000, ...extra,
});
const phone = (device: string, os: MobileDevice['os'], opts: { token?: boolean; session?: 'fg' | 'bg' } = {}): MobileDevice => ({
  device, os,
  ...(opts.token ? { token: `tok-${device}` } : {}),
  ...(opts.session ? { session: { sessionId: `s-${device}`, node: 'gw2', foreground: opts.session === 'fg' } } : {}),
});

const idle = pc('pc1', 'inactive', { reason: 'idle' });
const iphoneFg = phone('iphone', 'ios', { token: true, session: 'fg' });
const pixelOff = phone('pixel', 'android', { token: true });

interface Row {
  claim: string;
  state: UserState;
  /** Set for an ack-timeout row: runs decideFallback instead of decide. */
  failed?: UnackedDelivery;
  /** Undefined when nothing more happens (fallback rows only). */
  route?: Route;
  reason?: DecisionReason;
  /** `device:via`, in state order. */
  targets?: string[];
  /** Devices whose vendor push is silent (quiet hours); default none. */
  silent?: string[];
  /** What differs from MSG in the message routed (e.g. urgent, ttlSeconds). */
  msg?: Partial<ChatMessage>;
  /** Fallback rows: devices the decision already reached by the mobile path. */
  tried?: string[];
  /** Vendors with credentials, as `vendor` or `vendor/app`; unset = every vendor (DecideOptions.canPush). */
  pushOn?: string[];
}

const rows: Row[] = [
  { claim: 'claim 3: PC active -> every connected PC, no mobile',
    state: { pcs: [pc('pc1', 'active'), pc('pc2', 'inactive', { reason: 'screen_locked' })], mobiles: [iphoneFg, pixelOff] },
    route: 'pc', reason: 'pc_active', targets: ['pc1:pc', 'pc2:pc'] },
  { claim: 'claims 4/2: idle PC -> not PC; foreground iOS app directly, offline android by fcm',
    state: { pcs: [idle], mobiles: [iphoneFg, pixelOff] },
    route: 'mobile', reason: 'idle', targets: ['iphone:mobile', 'pixel:fcm'] },
  { claim: 'claim 4: screen_locked -> mobile',
    state: { pcs: [pc('pc1', 'inactive', { reason: 'screen_locked' })], mobiles: [pixelOff] },
    route: 'mobile', reason: 'screen_locked', targets: ['pixel:fcm'] },
  { claim: 'claim 4: client_locked -> mobile',
    state: { pcs: [pc('pc1', 'inactive', { reason: 'client_locked' })], mobiles: [iphoneFg] },
    route: 'mobile', reason: 'client_locked', targets: ['iphone:mobile'] },
  { claim: 'section 4: active but silent past the TTL -> stale -> mobile',
    state: { pcs: [pc('pc1', 'active', { lastSeen: NOW - TTL - 1 })], mobiles: [iphoneFg] },
    route: 'mobile', reason: 'stale', targets: ['iphone:mobile'] },
  { claim: 'section 4: silent exactly the TTL is still active',
    state: { pcs: [pc('pc1', 'active', { lastSeen: NOW - TTL })], mobiles: [iphoneFg] },
    route: 'pc', reason: 'pc_active', targets: ['pc1:pc'] },
  { claim: 'claim 1: no PC session -> inactive (no_pc) -> mobile',
    state: { mobiles: [iphoneFg] },
    route: 'mobile', reason: 'no_pc', targets: ['iphone:mobile'] },
  { claim: 'claims 1/6: offline devices -> vendor by OS: ios apns, android fcm, harmony hms, web webpush',
    state: { mobiles: [phone('a', 'ios', { token: true }), phone('b', 'android', { token: true }), phone('c', 'harmony', { token: true }), phone('d', 'web', { token: true })] },
    route: 'mobile', reason: 'no_pc', targets: ['a:apns', 'b:fcm', 'c:hms', 'd:webpush'] },
  { claim: 'claims 5/6: a backgrounded app counts as offline -> vendor push',
    state: { pcs: [idle], mobiles: [phone('iphone', 'ios', { token: true, session: 'bg' })] },
    route: 'mobile', reason: 'idle', targets: ['iphone:apns'] },
  { claim: 'claim 6: an offline phone without a token is skipped, the others still get it',
    state: { pcs: [idle], mobiles: [phone('old', 'android'), pixelOff, phone('tab', 'harmony', { session: 'bg' })] },
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm'] },
  { claim: 'claims 2/8: several inactive PCs, several phones -> no PC; reason of the most recent report',
    state: {
      pcs: [pc('pc1', 'inactive', { reason: 'idle', lastSeen: NOW - 5000 }), pc('pc2', 'inactive', { reason: 'screen_locked', lastSeen: NOW - 10 })],
      mobiles: [iphoneFg, phone('tab', 'android', { token: true, session: 'fg' }), pixelOff],
    },
    route: 'mobile', reason: 'screen_locked', targets: ['iphone:mobile', 'tab:mobile', 'pixel:fcm'] },
  { claim: 'section 4: inactive and nothing reachable on mobile -> connected PCs (pc_fallback)',
    state: { pcs: [idle, pc('pc2', 'active', { lastSeen: NOW - TTL - 10 })], mobiles: [phone('old', 'ios', { session: 'bg' })] },
    route: 'pc_fallback', reason: 'idle', targets: ['pc1:pc', 'pc2:pc'] },
  { claim: 'section 4 (v1.1): no PC and no reachable phone -> held until the user is reachable',
    state: { mobiles: [phone('old', 'ios')] },
    route: 'held', reason: 'no_pc', targets: [] },
  { claim: 'section 4 (v1.1): empty state -> held',
    state: {},
    route: 'held', reason: 'no_pc', targets: [] },
  { claim: 'section 4 (v1.1): a PC idle, a phone backgrounded without a token -> held, reason idle',
    state: { pcs: [], mobiles: [phone('tab', 'android', { session: 'bg' })] },
    route: 'held', reason: 'no_pc', targets: [] },
  { claim: 'section 4 (v1.1): ttlSeconds 0 means now or never -> undeliverable, not held',
    state: { mobiles: [phone('old', 'ios')] }, msg: { ttlSeconds: 0 },
    route: 'undeliverable', reason: 'no_pc', targets: [] },
  { claim: 'section 4 (v1.1): ttlSeconds 0 with a reachable phone -> routed as usual',
    state: { mobiles: [iphoneFg] }, msg: { ttlSeconds: 0 },
    route: 'mobile', reason: 'no_pc', targets: ['iphone:mobile'] },
];

rows.push(
  { claim: 'ack timeout, section 4: PC not acked -> mobile path (direct + vendor), never back to a PC',
    state: { pcs: [pc('pc1', 'active'), pc('pc2', 'active')], mobiles: [iphoneFg, pixelOff] },
    failed: { via: 'pc', device: 'pc1' }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:mobile', 'pixel:fcm'] },
  { claim: 'ack timeout, section 4 (v1.1): PC not acked and no phone reachable -> nothing left (the actor holds it), not the other PC',
    state: { pcs: [pc('pc1', 'active'), pc('pc2', 'active')], mobiles: [phone('old', 'ios')] },
    failed: { via: 'pc', device: 'pc1' } },
  { claim: 'ack timeout, claims 5/6: mobile direct not acked -> that device by its vendor',
    state: { pcs: [idle], mobiles: [iphoneFg, pixelOff] },
    failed: { via: 'mobile', device: 'iphone' }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:apns'] },
  { claim: 'ack timeout, section 4 (v1.1): mobile direct not acked, no token, app still in the foreground -> nothing left (held), not sent directly again',
    state: { mobiles: [phone('web', 'web', { session: 'fg' })] },
    failed: { via: 'mobile', device: 'web' } },
  { claim: 'ack timeout, section 4: mobile direct not acked, no token, an idle PC connected -> nothing left (held), not the PC',
    state: { pcs: [idle], mobiles: [phone('web', 'web', { session: 'fg' })] },
    failed: { via: 'mobile', device: 'web' } },
);

// NOW is 1970-01-01 00:16:40 UTC = 01:16 in Europe/Berlin (CET): inside 01:00-02:00 there, outside 22:00-01:00.
const quiet: UserPolicy['quietHours'] = { start: '01:00', end: '02:00', tz: 'Europe/Berlin' };
const notQuiet: UserPolicy['quietHours'] = { start: '22:00', end: '01:00', tz: 'Europe/Berlin' };
const policy = (p: Partial<UserPolicy>): UserPolicy => ({ mobile: 'when_away', ...p });
const active = pc('pc1', 'active');

rows.push(
  { claim: 'policy when_away (default), section 4: the rule as written -> PC only while active',
    state: { pcs: [active], mobiles: [iphoneFg, pixelOff], policy: policy({}) },
    route: 'pc', reason: 'pc_active', targets: ['pc1:pc'] },
  { claim: 'policy always, section 4: PC active -> every PC and the mobile path too (policy_always)',
    state: { pcs: [active], mobiles: [iphoneFg, pixelOff], policy: policy({ mobile: 'always' }) },
    route: 'pc', reason: 'policy_always', targets: ['pc1:pc', 'iphone:mobile', 'pixel:fcm'] },
  { claim: 'policy always, section 4: PC active but no phone reachable -> PC only, nothing changed (pc_active)',
    state: { pcs: [active], mobiles: [phone('old', 'ios')], policy: policy({ mobile: 'always' }) },
    route: 'pc', reason: 'pc_active', targets: ['pc1:pc'] },
  { claim: 'policy always, section 4: PC inactive -> the rule as written (mobile, reason of the PC)',
    state: { pcs: [idle], mobiles: [pixelOff], policy: policy({ mobile: 'always' }) },
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm'] },
  { claim: 'policy never, section 4: no vendor push; a foreground app still gets it directly (policy_never)',
    state: { pcs: [idle], mobiles: [iphoneFg, pixelOff], policy: policy({ mobile: 'never' }) },
    route: 'mobile', reason: 'policy_never', targets: ['iphone:mobile'] },
  { claim: 'policy never, section 4: only offline phones -> connected PCs get it (pc_fallback, policy_never)',
    state: { pcs: [idle], mobiles: [pixelOff], policy: policy({ mobile: 'never' }) },
    route: 'pc_fallback', reason: 'policy_never', targets: ['pc1:pc'] },
  { claim: 'policy never, section 4 (v1.1): only offline phones, no PC -> held (policy_never)',
    state: { mobiles: [pixelOff], policy: policy({ mobile: 'never' }) },
    route: 'held', reason: 'policy_never', targets: [] },
  { claim: 'policy never, section 4: PC active -> PC, as always',
    state: { pcs: [active], mobiles: [pixelOff], policy: policy({ mobile: 'never' }) },
    route: 'pc', reason: 'pc_active', targets: ['pc1:pc'] },
  { claim: 'quiet hours, section 4: inside the window vendor pushes are silent (quiet_hours); direct delivery unchanged',
    state: { pcs: [idle], mobiles: [iphoneFg, pixelOff], policy: policy({ quietHours: quiet }) },
    route: 'mobile', reason: 'quiet_hours', targets: ['iphone:mobile', 'pixel:fcm'], silent: ['pixel'] },
  { claim: 'quiet hours, section 4: an urgent message is never silenced',
    state: { pcs: [idle], mobiles: [pixelOff], policy: policy({ quietHours: quiet }) }, msg: { ...MSG, urgent: true },
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm'] },
  { claim: 'quiet hours, section 4: outside the window (22:00-01:00 over midnight, now 01:16) pushes are normal',
    state: { pcs: [idle], mobiles: [pixelOff], policy: policy({ quietHours: notQuiet }) },
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm'] },
  { claim: 'quiet hours with only direct deliveries: nothing to silence, reason stays the PC\'s',
    state: { pcs: [idle], mobiles: [iphoneFg], policy: policy({ quietHours: quiet }) },
    route: 'mobile', reason: 'idle', targets: ['iphone:mobile'] },
  { claim: 'policy always + quiet hours: the PC gets it, the phone a silent push (policy_always)',
    state: { pcs: [active], mobiles: [pixelOff], policy: policy({ mobile: 'always', quietHours: quiet }) },
    route: 'pc', reason: 'policy_always', targets: ['pc1:pc', 'pixel:fcm'], silent: ['pixel'] },
  { claim: 'bots, issue 10 part 5: a bot session reporting active does not make the PC active (no_pc)',
    state: { pcs: [pc('bridge', 'active', { bot: true })], mobiles: [pixelOff] },
    route: 'mobile', reason: 'no_pc', targets: ['pixel:fcm'] },
  { claim: 'bots: a bot beside an idle human PC -> the human\'s reason decides, phone gets it',
    state: { pcs: [idle, pc('bridge', 'active', { bot: true, lastSeen: NOW })], mobiles: [pixelOff] },
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm'] },
  { claim: 'bots: nothing reachable on mobile -> the bot is a connected PC session (pc_fallback)',
    state: { pcs: [pc('bridge', 'active', { bot: true })] },
    route: 'pc_fallback', reason: 'no_pc', targets: ['bridge:pc'] },
  { claim: 'ack timeout + policy never: PC not acked -> the foreground phone only, no vendor push',
    state: { pcs: [active], mobiles: [iphoneFg, pixelOff], policy: policy({ mobile: 'never' }) },
    failed: { via: 'pc', device: 'pc1' }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:mobile'] },
  { claim: 'ack timeout + policy never: mobile direct not acked, has a token -> no vendor push, nothing more',
    state: { pcs: [idle], mobiles: [iphoneFg], policy: policy({ mobile: 'never' }) },
    failed: { via: 'mobile', device: 'iphone' } },
  { claim: 'ack timeout + policy always: PC not acked -> phones the decision already pushed are not pushed again (nothing left)',
    state: { pcs: [active], mobiles: [iphoneFg, pixelOff], policy: policy({ mobile: 'always' }) }, tried: ['iphone', 'pixel'],
    failed: { via: 'pc', device: 'pc1' } },
  { claim: 'ack timeout + quiet hours: the fallback push is silent too',
    state: { pcs: [idle], mobiles: [iphoneFg], policy: policy({ quietHours: quiet }) },
    failed: { via: 'mobile', device: 'iphone' }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:apns'], silent: ['iphone'] },
);

rows.push(
  { claim: 'section 4: a device whose vendor has no credentials is not reachable by push -> connected PCs (pc_fallback)',
    state: { pcs: [idle], mobiles: [phone('iphone', 'ios', { token: true })] }, pushOn: ['fcm'],
    route: 'pc_fallback', reason: 'idle', targets: ['pc1:pc'] },
  { claim: 'section 4: vendor without credentials, no PC session -> nobody reachable (held)',
    state: { mobiles: [phone('iphone', 'ios', { token: true, session: 'bg' })] }, pushOn: [],
    route: 'held', reason: 'no_pc', targets: [] },
  { claim: 'section 4: only the devices whose vendor is configured are pushed; a foreground app still gets it directly',
    state: { pcs: [idle], mobiles: [phone('a', 'ios', { token: true }), pixelOff, phone('w', 'web', { token: true, session: 'fg' })] }, pushOn: ['fcm'],
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm', 'w:mobile'] },
  { claim: "section 4: credentials are per app: the device's app decides",
    state: { mobiles: [{ ...phone('a', 'ios', { token: true }), app: 'beta' }, phone('b', 'ios', { token: true })] }, pushOn: ['apns/beta'],
    route: 'mobile', reason: 'no_pc', targets: ['a:apns'] },
  { claim: 'ack timeout, section 4: mobile direct not acked, its vendor has no credentials -> no push, nothing left (held)',
    state: { mobiles: [iphoneFg] }, pushOn: ['fcm'],
    failed: { via: 'mobile', device: 'iphone' } },
);

/** DecideOptions.canPush from a row's `pushOn`. */
const canPushOf = (pushOn: string[] | undefined) => pushOn === undefined ? undefined
  : (vendor: string, app: string | undefined) => pushOn.includes(app === undefined ? vendor : `${vendor}/${app}`);

describe('decide: claims 1-8 and PROTOCOL.md section 4', () => {
  it.each(rows)('$claim', (row) => {
    const msg = { ...MSG, ...row.msg };
    const canPush = canPushOf(row.pushOn);
    const out = row.failed
      ? decideFallback(row.state, 'm1', row.failed, NOW, { urgent: msg.urgent, tried: row.tried, canPush })
      : decide(row.state, msg, NOW, { presenceTtlMs: TTL, canPush });
    if (row.route === undefined) {
      expect(out).toBeUndefined();
      return;
    }
    const { decision, commands } = out!;
    expect(decision).toMatchObject({ id: 'm1', route: row.route, reason: row.reason, at: NOW });
    expect(decision.targets.map((t) => `${t.device}:${t.via}`)).toEqual(row.targets);
    // Quiet hours: the silent flag is on the target (GET …/decisions) and on the push command (the sender's job).
    expect(decision.targets.filter((t) => t.silent).map((t) => t.device)).toEqual(row.silent ?? []);
    expect(commands.filter((c) => c.type === 'push' && c.silent).map((c) => c.device)).toEqual(row.silent ?? []);
    // Commands carry the session or the token the target names (claim 6: OS type + terminal identifier).
    for (const c of commands) {
      if (c.type === 'push') expect(c.token).toBe(`tok-${c.device}`);
      else expect(c.session.id).toBe(`s-${c.device}`);
    }
    // At most once per device per decision; a fallback never goes back to a PC.
    expect(new Set(commands.map((c) => c.device)).size).toBe(commands.length);
    if (row.failed) expect(commands.some((c) => c.type === 'deliver' && c.via === 'pc')).toBe(false);
  });
});
