import { describe, expect, it } from 'vitest';
import { decide, decideFallback, type UnackedDelivery } from '../actors/decide.js';
import type { MobileDevice, PcSession, UserState } from '../actors/user-state.js';
import type { ChatMessage, DecisionReason, Route } from '../protocol/index.js';

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
  { claim: 'section 4: no PC and no reachable phone -> undeliverable',
    state: { mobiles: [phone('old', 'ios')] },
    route: 'undeliverable', reason: 'no_pc', targets: [] },
  { claim: 'section 4: empty state -> undeliverable',
    state: {},
    route: 'undeliverable', reason: 'no_pc', targets: [] },
];

rows.push(
  { claim: 'ack timeout, section 4: PC not acked -> mobile path (direct + vendor), never back to a PC',
    state: { pcs: [pc('pc1', 'active'), pc('pc2', 'active')], mobiles: [iphoneFg, pixelOff] },
    failed: { via: 'pc', device: 'pc1' }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:mobile', 'pixel:fcm'] },
  { claim: 'ack timeout, section 4: PC not acked and no phone reachable -> undeliverable, not the other PC',
    state: { pcs: [pc('pc1', 'active'), pc('pc2', 'active')], mobiles: [phone('old', 'ios')] },
    failed: { via: 'pc', device: 'pc1' }, route: 'undeliverable', reason: 'ack_timeout', targets: [] },
  { claim: 'ack timeout, claims 5/6: mobile direct not acked -> that device by its vendor',
    state: { pcs: [idle], mobiles: [iphoneFg, pixelOff] },
    failed: { via: 'mobile', device: 'iphone' }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:apns'] },
  { claim: 'ack timeout, claim 6: mobile direct not acked, no token, no resend left -> nothing more',
    state: { mobiles: [phone('web', 'web', { session: 'fg' })] },
    failed: { via: 'mobile', device: 'web', mayRedeliver: false } },
  { claim: 'ack timeout, claim 5: mobile direct not acked, no token, app still in the foreground -> sent directly again',
    state: { mobiles: [phone('web', 'web', { session: 'fg' })] },
    failed: { via: 'mobile', device: 'web', mayRedeliver: true }, route: 'mobile', reason: 'ack_timeout', targets: ['web:mobile'] },
);

rows.push(
  { claim: 'section 4: a device whose vendor has no credentials is not reachable by push -> connected PCs (pc_fallback)',
    state: { pcs: [idle], mobiles: [phone('iphone', 'ios', { token: true })] }, pushOn: ['fcm'],
    route: 'pc_fallback', reason: 'idle', targets: ['pc1:pc'] },
  { claim: 'section 4: vendor without credentials, no PC session -> nobody reachable (held)',
    state: { mobiles: [phone('iphone', 'ios', { token: true, session: 'bg' })] }, pushOn: [],
    route: 'undeliverable', reason: 'no_pc', targets: [] },
  { claim: 'section 4: only the devices whose vendor is configured are pushed; a foreground app still gets it directly',
    state: { pcs: [idle], mobiles: [phone('a', 'ios', { token: true }), pixelOff, phone('w', 'web', { token: true, session: 'fg' })] }, pushOn: ['fcm'],
    route: 'mobile', reason: 'idle', targets: ['pixel:fcm', 'w:mobile'] },
  { claim: "section 4: credentials are per app: the device's app decides",
    state: { mobiles: [{ ...phone('a', 'ios', { token: true }), app: 'beta' }, phone('b', 'ios', { token: true })] }, pushOn: ['apns/beta'],
    route: 'mobile', reason: 'no_pc', targets: ['a:apns'] },
  { claim: 'ack timeout, section 4: mobile direct not acked, its vendor has no credentials -> no push (resent directly while in the foreground)',
    state: { mobiles: [iphoneFg] }, pushOn: ['fcm'],
    failed: { via: 'mobile', device: 'iphone', mayRedeliver: true }, route: 'mobile', reason: 'ack_timeout', targets: ['iphone:mobile'] },
);

/** DecideOptions.canPush from a row's `pushOn`. */
const canPushOf = (pushOn: string[] | undefined) => pushOn === undefined ? undefined
  : (vendor: string, app: string | undefined) => pushOn.includes(app === undefined ? vendor : `${vendor}/${app}`);

describe('decide: claims 1-8 and PROTOCOL.md section 4', () => {
  it.each(rows)('$claim', (row) => {
    const canPush = canPushOf(row.pushOn);
    const out = row.failed
      ? decideFallback(row.state, 'm1', row.failed, NOW, { canPush })
      : decide(row.state, MSG, NOW, { presenceTtlMs: TTL, canPush });
    if (row.route === undefined) {
      expect(out).toBeUndefined();
      return;
    }
    const { decision, commands } = out!;
    expect(decision).toMatchObject({ id: 'm1', route: row.route, reason: row.reason, at: NOW });
    expect(decision.targets.map((t) => `${t.device}:${t.via}`)).toEqual(row.targets);
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
