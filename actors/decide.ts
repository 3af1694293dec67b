import { VENDOR_OF, type ChatMessage, type Decision, type DecisionReason, type DecisionTarget, type Route, type SessionRef, type Vendor } from '../protocol/index.js';
import type { PcSession, UserState } from './user-state.js';

/**
 * The routing rule of PROTOCOL.md section 4 (patent claims 1-8) as pure functions: state + message + time in,
 * a decision and the commands that carry it out. No actor runtime, no sockets, no bus; the user actor executes the commands.
 */

export interface DecideOptions {
  /** A PC session silent longer than this is inactive with reason `stale` (SWITCHBOARD_PRESENCE_TTL_MS). */
  presenceTtlMs: number;
}

export type Command =
  | { type: 'deliver'; via: 'pc' | 'mobile'; device: string; session: SessionRef }
  | { type: 'push'; vendor: Vendor; device: string; token: string; app?: string };

export interface Routed {
  decision: Decision;
  commands: Command[];
}

export interface PcStatus {
  active: boolean;
  /** Why the user counts as inactive; absent when active. */
  reason?: DecisionReason;
  sessions: number;
}

/** Why one PC session is not active, or undefined when it is (claim 4 plus the presence TTL). */
export function sessionInactiveReason(pc: PcSession, now: number, opts: DecideOptions): DecisionReason | undefined {
  if (now - pc.lastSeen > opts.presenceTtlMs) return 'stale';
  return pc.presence === 'active' ? undefined : (pc.reason ?? 'idle');
}

/**
 * The user's PC state: active when any session is active; otherwise the reason of the most recently heard
 * session (first one on a tie), so several inactive PCs still give one deterministic reason.
 */
export function pcStatus(state: UserState, now: number, opts: DecideOptions): PcStatus {
  const pcs = state.pcs;
  if (pcs === undefined || pcs.length === 0) return { active: false, reason: 'no_pc', sessions: 0 };
  let latest: PcSession | undefined;
  for (const pc of pcs) {
    if (sessionInactiveReason(pc, now, opts) === undefined) return { active: true, sessions: pcs.length };
    if (latest === undefined || pc.lastSeen > latest.lastSeen) latest = pc;
  }
  return { active: false, reason: sessionInactiveReason(latest!, now, opts), sessions: pcs.length };
}

/** Routes one accepted message. */
export function decide(state: UserState, msg: ChatMessage, now: number, opts: DecideOptions): Routed {
  const pc = pcStatus(state, now, opts);
  // Claim 3: PC active -> every connected PC session, no mobile device.
  if (pc.active) return routed(msg.id, 'pc', 'pc_active', now, pcDeliveries(state));
  // Claims 1, 2, 5, 6, 8: inactive -> not the PC; each mobile directly when online, else by its vendor.
  const mobile = mobilePath(state);
  if (mobile.length > 0) return routed(msg.id, 'mobile', pc.reason!, now, mobile);
  // Section 4: nothing reachable on mobile -> whatever PC sessions are connected, else nobody.
  const fallback = pcDeliveries(state);
  if (fallback.length > 0) return routed(msg.id, 'pc_fallback', pc.reason!, now, fallback);
  return routed(msg.id, 'undeliverable', pc.reason!, now, []);
}

/** What failed to ack within SWITCHBOARD_ACK_TIMEOUT_MS. */
export interface UnackedDelivery {
  via: 'pc' | 'mobile';
  device: string;
  /** A phone with no token may be sent the message directly once more while its app is still in the foreground. */
  mayRedeliver?: boolean;
}

/** Direct resends per message after ack timeouts, for phones with no push token (a lost frame must not lose the message). */
export const MAX_DIRECT_REDELIVERIES = 2;

/**
 * Section 4, ack timeout: a PC delivery falls back to the mobile path (never to a PC again); a mobile direct
 * delivery falls back to that device's vendor push; with no token, to a direct resend while its app is still in the
 * foreground (bounded by `mayRedeliver`). Undefined when nothing is left to try.
 */
export function decideFallback(state: UserState, msgId: string, failed: UnackedDelivery, now: number): Routed | undefined {
  if (failed.via === 'pc') {
    const mobile = mobilePath(state);
    return routed(msgId, mobile.length > 0 ? 'mobile' : 'undeliverable', 'ack_timeout', now, mobile);
  }
  const m = state.mobiles?.find((d) => d.device === failed.device);
  if (m?.token !== undefined) return routed(msgId, 'mobile', 'ack_timeout', now, [pushCommand(m.device, m.os, m.token, m.app)]);
  if (failed.mayRedeliver && m?.session?.foreground) {
    return routed(msgId, 'mobile', 'ack_timeout', now, [{ type: 'deliver', via: 'mobile', device: m.device, session: { node: m.session.node, id: m.session.sessionId } }]);
  }
  return undefined;
}

/** Every connected PC session, one per device (a message reaches each device at most once per decision). */
function pcDeliveries(state: UserState): Command[] {
  const out: Command[] = [];
  for (const pc of state.pcs ?? []) {
    if (out.some((c) => c.device === pc.device)) continue;
    out.push({ type: 'deliver', via: 'pc', device: pc.device, session: { node: pc.node, id: pc.sessionId } });
  }
  return out;
}

/** Claims 5/6: a foreground app gets it directly; otherwise (offline or backgrounded) the OS vendor, given a token. */
function mobilePath(state: UserState): Command[] {
  const out: Command[] = [];
  for (const m of state.mobiles ?? []) {
    if (m.session?.foreground) {
      out.push({ type: 'deliver', via: 'mobile', device: m.device, session: { node: m.session.node, id: m.session.sessionId } });
    } else if (m.token !== undefined) {
      out.push(pushCommand(m.device, m.os, m.token, m.app));
    }
  }
  return out;
}

function pushCommand(device: string, os: keyof typeof VENDOR_OF, token: string, app: string | undefined): Command {
  const c: Command = { type: 'push', vendor: VENDOR_OF[os], device, token };
  if (app !== undefined) c.app = app;
  return c;
}

function routed(id: string, route: Route, reason: DecisionReason, at: number, commands: Command[]): Routed {
  const targets: DecisionTarget[] = commands.map((c) => ({ device: c.device, via: c.type === 'push' ? c.vendor : c.via }));
  return { decision: { id, route, reason, targets, at }, commands };
}
