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
  msg?: Partial<ChatMessage>;
  /** Undefined when nothing more happens (fallback rows only). */
  route?: Route;
  reason?: DecisionReason;
  /** `device:via`, in state order. */
  targets?: string[];
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
  { claim: 'ack timeout, claim 6 / section 4 (v1.1): mobile direct not acked, no token, no resend left -> nothing left (held)',
    state: { mobiles: [phone('web', 'web', { session: 'fg' })] },
    failed: { via: 'mobile', device: 'web', mayRedeliver: false } },
  { claim: 'ack timeout, claim 5: mobile direct not acked, no token, app still in the foreground -> sent directly again',
    state: { mobiles: [phone('web', 'web', { session: 'fg' })] },
    failed: { via: 'mobile', device: 'web', mayRedeliver: true }, route: 'mobile', reason: 'ack_timeout', targets: ['web:mobile'] },
);

describe('decide: claims 1-8 and PROTOCOL.md section 4', () => {
  it.each(rows)('$claim', (row) => {
    const out = row.failed ? decideFallback(row.state, 'm1', row.failed, NOW) : decide(row.state, { ...MSG, ...row.msg }, NOW, { presenceTtlMs: TTL });
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
