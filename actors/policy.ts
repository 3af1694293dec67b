import { DEFAULT_POLICY, idleAfterMsOf, type ChatMessage, type GatewayMessage, type QuietHours, type UserPolicy } from '../protocol/index.js';
import type { UserState } from './user-state.js';

/**
 * The user's policy (PROTOCOL.md section 4, policy) as pure functions for decide(): which mobile rule applies,
 * whether a message's vendor pushes go out silently, and the push delay. Wall-clock time comes from Intl with the
 * IANA zone (Node's bundled ICU), so daylight-saving changes follow the zone's own rules; no tz library.
 */

/** Formatters are costly to build (~50 µs) and cheap to reuse; a bounded cache, cleared when full. */
const MAX_CACHED_ZONES = 256;
const formatters = new Map<string, Intl.DateTimeFormat>();

export function policyOf(p: UserPolicy | undefined): UserPolicy {
  return p ?? DEFAULT_POLICY;
}

/** Minutes since local midnight (0-1439) at epoch ms `at` in zone `tz`. */
export function localMinutes(tz: string, at: number): number {
  let f = formatters.get(tz);
  if (f === undefined) {
    if (formatters.size >= MAX_CACHED_ZONES) formatters.clear();
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(tz, f);
  }
  let h = 0;
  let m = 0;
  for (const part of f.formatToParts(at)) {
    if (part.type === 'hour') h = Number(part.value);
    else if (part.type === 'minute') m = Number(part.value);
  }
  return (h % 24) * 60 + m;
}

/**
 * True when the wall clock in `q.tz` at `at` lies in [start, end). A window whose end is before its start runs over
 * midnight (22:00-07:00 = 22:00-24:00 and 00:00-07:00). On a DST change the local clock decides: a window starting
 * at 02:30 in Europe/Berlin never starts on the last Sunday of March (02:00 jumps to 03:00) unless it spans 03:00.
 */
export function isQuietAt(q: QuietHours, at: number): boolean {
  const t = localMinutes(q.tz, at);
  const start = hhmm(q.start);
  const end = hhmm(q.end);
  return start < end ? t >= start && t < end : t >= start || t < end;
}

/** Section 4: during quiet hours vendor pushes are sent silently, unless the message is urgent. */
export function pushesSilent(policy: UserPolicy, msg: Pick<ChatMessage, 'urgent'>, at: number): boolean {
  return policy.quietHours !== undefined && msg.urgent !== true && isQuietAt(policy.quietHours, at);
}

/** Grace before a vendor push, ms: the user's `pushDelaySeconds`, else the node's SWITCHBOARD_PUSH_DELAY_MS. */
export function pushDelayMsOf(policy: UserPolicy | undefined, nodeDefaultMs: number): number {
  return policy?.pushDelaySeconds !== undefined ? policy.pushDelaySeconds * 1000 : nodeDefaultMs;
}

/**
 * `policy` frames ({type:'policy', idleAfterMs}) for every connected PC session of the user, sent when `PUT …/policy`
 * stored a new policy, so open PC clients apply the new idle threshold at once instead of at their next `welcome`.
 * Phones get none (the threshold is the PC's). An addition where PROTOCOL.md section 2 is silent.
 */
export function policyFrames(state: UserState, user: string): { node: string; msg: GatewayMessage }[] {
  const idleAfterMs = idleAfterMsOf(state.policy);
  return (state.pcs ?? []).map((pc) => ({ node: pc.node, msg: { type: 'frame', sessionId: pc.sessionId, frame: { type: 'policy', idleAfterMs }, user } }));
}

function hhmm(s: string): number {
  return Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
}
