import { VENDOR_OF, type ChatMessage, type Decision, type DecisionReason, type DecisionTarget, type Route, type SessionRef, type Vendor } from '../protocol/index.js';
import { policyOf, pushesSilent } from './policy.js';
import type { MobileDevice, PcSession, UserState } from './user-state.js';

/**
 * The routing rule of PROTOCOL.md section 4 (patent claims 1-8) as pure functions: state + message + time in,
 * a decision and the commands that carry it out. No actor runtime, no sockets, no bus; the user actor executes the commands.
 */

export interface DecideOptions {
  /** A PC session silent longer than this is inactive with reason `stale` (SWITCHBOARD_PRESENCE_TTL_MS). */
  presenceTtlMs: number;
  /**
   * Whether `vendor` has credentials for `app` (undefined = the default app). Section 4: a device whose vendor has
   * no credentials configured is not reachable by push. Default: every vendor can push.
   */
  canPush?(vendor: Vendor, app: string | undefined): boolean;
}

export type Command =
  | { type: 'deliver'; via: 'pc' | 'mobile'; device: string; session: SessionRef }
  /** `silent`: quiet hours (section 4): no sound, lowest interruption level. */
  | { type: 'push'; vendor: Vendor; device: string; token: string; app?: string; silent?: true };

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
  // A PC that connected but has not reported presence yet is not active; its reason says so (not "idle").
  return pc.presence === 'active' ? undefined : (pc.reason ?? 'unreported');
}

/**
 * The user's PC state: active when any human session is active; otherwise the reason of the most recently heard
 * human session (first one on a tie), so several inactive PCs still give one deterministic reason. A bot or bridge
 * session (`bot`, issue 10 part 5) never makes it active; with only such sessions the reason is `no_pc`.
 */
export function pcStatus(state: UserState, now: number, opts: DecideOptions): PcStatus {
  const pcs = state.pcs;
  if (pcs === undefined || pcs.length === 0) return { active: false, reason: 'no_pc', sessions: 0 };
  let latest: PcSession | undefined;
  for (const pc of pcs) {
    if (pc.bot) continue;
    if (sessionInactiveReason(pc, now, opts) === undefined) return { active: true, sessions: pcs.length };
    if (latest === undefined || pc.lastSeen > latest.lastSeen) latest = pc;
  }
  if (latest === undefined) return { active: false, reason: 'no_pc', sessions: pcs.length };
  return { active: false, reason: sessionInactiveReason(latest, now, opts), sessions: pcs.length };
}

/**
 * Routes one accepted message under the user's policy (`state.policy`, section 4). The reason names the policy
 * when it changed the route: `policy_always` (mobile path too while the PC is active), `policy_never` (a vendor
 * push left out), `quiet_hours` (vendor pushes sent silently).
 */
export function decide(state: UserState, msg: ChatMessage, now: number, opts: DecideOptions): Routed {
  const policy = policyOf(state.policy);
  const pc = pcStatus(state, now, opts);
  const silent = pushesSilent(policy, msg, now);
  if (pc.active) {
    // Claim 3: PC active -> every connected PC session, no mobile device; policy "always": the mobile path too.
    if (policy.mobile !== 'always') return routed(msg.id, 'pc', 'pc_active', now, pcDeliveries(state));
    const mobile = mobilePath(state, true, silent, opts);
    return routed(msg.id, 'pc', mobile.commands.length > 0 ? 'policy_always' : 'pc_active', now, [...pcDeliveries(state), ...mobile.commands]);
  }
  // Claims 1, 2, 5, 6, 8: inactive -> not the PC; each mobile directly when online, else by its vendor
  // (policy "never": no vendor push).
  const mobile = mobilePath(state, policy.mobile !== 'never', silent, opts);
  const reason = mobile.withheld ? 'policy_never' : mobile.silenced ? 'quiet_hours' : pc.reason!;
  if (mobile.commands.length > 0) return routed(msg.id, 'mobile', reason, now, mobile.commands);
  // Section 4: nothing reachable on mobile -> whatever PC sessions are connected, else held until the user is
  // reachable; `ttlSeconds: 0` means now or never, so such a message is undeliverable instead.
  const fallback = pcDeliveries(state);
  if (fallback.length > 0) return routed(msg.id, 'pc_fallback', reason, now, fallback);
  return routed(msg.id, msg.ttlSeconds === 0 ? 'undeliverable' : 'held', reason, now, []);
}

/** What failed to ack within SWITCHBOARD_ACK_TIMEOUT_MS. */
export interface UnackedDelivery {
  via: 'pc' | 'mobile';
  device: string;
}

/** What a fallback must know of the message besides its id. */
export interface FallbackContext {
  /** The message is `urgent` (never silenced in quiet hours). */
  urgent?: boolean;
  /** Devices the message's decision already sent to by the mobile path (policy "always"): not sent to twice. */
  tried?: readonly string[];
  /** DecideOptions.canPush: a device whose vendor has no credentials gets no push (section 4). */
  canPush?: DecideOptions['canPush'];
}

/**
 * Section 4, ack timeout: a PC delivery falls back to the mobile path (never to a PC again); a mobile direct
 * delivery falls back to that device's vendor push, never to the same device directly again (the contract names no
 * resend, and "with nothing left, the message is held": it comes back when the user is reachable again, a session
 * opening, the phone coming to the foreground, a token stored; while the session it timed out on is still open,
 * once more an ack timeout later and whenever that session acks or pings: the user actor's `armSessionReplay` and
 * `signOfLife`). Undefined when nothing is left to try (the actor then holds the message). The user's policy applies as in decide(): "never" sends no vendor push, quiet hours make
 * pushes silent.
 */
export function decideFallback(state: UserState, msgId: string, failed: UnackedDelivery, now: number, ctx: FallbackContext = {}): Routed | undefined {
  const policy = policyOf(state.policy);
  const silent = pushesSilent(policy, { urgent: ctx.urgent ? true : undefined }, now);
  const pushes = policy.mobile !== 'never';
  if (failed.via === 'pc') {
    const tried = ctx.tried ?? [];
    const mobile = mobilePath(state, pushes, silent, ctx).commands.filter((c) => !tried.includes(c.device));
    return mobile.length > 0 ? routed(msgId, 'mobile', 'ack_timeout', now, mobile) : undefined; // nothing left: held
  }
  const m = state.mobiles?.find((d) => d.device === failed.device);
  if (pushes && m !== undefined && pushable(m, ctx)) return routed(msgId, 'mobile', 'ack_timeout', now, [pushCommand(m.device, m.os, m.token!, m.app, silent)]);
  return undefined; // nothing left: held
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

/** The mobile path, and whether policy changed it: a push left out ("never") or sent silently (quiet hours). */
interface MobilePath {
  commands: Command[];
  withheld: boolean;
  silenced: boolean;
}

/**
 * Claims 5/6: a foreground app gets it directly; otherwise (offline or backgrounded) the OS vendor, given a token
 * and `pushes` allowed by the policy; `silent` marks every push for quiet hours.
 */
function mobilePath(state: UserState, pushes: boolean, silent: boolean, opts: Pick<DecideOptions, 'canPush'>): MobilePath {
  const out: MobilePath = { commands: [], withheld: false, silenced: false };
  for (const m of state.mobiles ?? []) {
    if (m.session?.foreground) {
      out.commands.push({ type: 'deliver', via: 'mobile', device: m.device, session: { node: m.session.node, id: m.session.sessionId } });
    } else if (pushable(m, opts)) {
      if (!pushes) out.withheld = true;
      else {
        out.commands.push(pushCommand(m.device, m.os, m.token!, m.app, silent));
        out.silenced ||= silent;
      }
    }
  }
  return out;
}

/** Section 4: reachable by push = a stored token and a vendor with credentials for the device's app. */
function pushable(m: MobileDevice, opts: Pick<DecideOptions, 'canPush'>): boolean {
  return m.token !== undefined && (opts.canPush?.(VENDOR_OF[m.os], m.app) ?? true);
}

function pushCommand(device: string, os: keyof typeof VENDOR_OF, token: string, app: string | undefined, silent: boolean): Command {
  const c: Command = { type: 'push', vendor: VENDOR_OF[os], device, token };
  if (app !== undefined) c.app = app;
  if (silent) c.silent = true;
  return c;
}

function routed(id: string, route: Route, reason: DecisionReason, at: number, commands: Command[]): Routed {
  const targets: DecisionTarget[] = commands.map((c) => {
    const t: DecisionTarget = { device: c.device, via: c.type === 'push' ? c.vendor : c.via };
    if (c.type === 'push' && c.silent) t.silent = true;
    return t;
  });
  return { decision: { id, route, reason, targets, at }, commands };
}
