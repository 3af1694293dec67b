import type { Vendor } from './message.js';
import type { UserPolicy } from './policy.js';

/** Routing decisions, PROTOCOL.md sections 3 and 4. */

/** Decisions kept per user for `GET …/decisions` (PROTOCOL.md section 3: at least the last 100). */
export const DECISIONS_PER_USER = 100;

/** `held`: nothing reachable; the message waits, durably, for the user to become reachable (section 4, held messages). */
export type Route = 'pc' | 'mobile' | 'pc_fallback' | 'held' | 'undeliverable';
export type Via = 'pc' | 'mobile' | Vendor;

/**
 * Why a route was chosen: the PC's state (`pc_active`, the inactive reasons of claim 4, `unreported` for a PC that
 * connected but has sent no presence yet, `stale`, `no_pc`),
 * `ack_timeout` for a fallback decision, `push_failed` for a message held because every vendor push of its decision
 * failed for good (a dead token, a refusal; extends the contract, which holds a message with nothing left to try),
 * or the user's policy when it changed the route (section 4, policy):
 * `policy_always` (the mobile path too while the PC is active), `policy_never` (vendor pushes left out),
 * `quiet_hours` (vendor pushes sent silently).
 */
export type DecisionReason =
  | 'pc_active' | 'idle' | 'screen_locked' | 'client_locked' | 'unreported' | 'stale' | 'no_pc' | 'ack_timeout' | 'push_failed'
  | 'policy_always' | 'policy_never' | 'quiet_hours';

/** Final state of one target; absent while it is in flight. Extends the contract (section 3 is silent). */
export type TargetOutcome = 'acked' | 'ack_timeout' | 'ok' | 'dead_token' | 'failed' | 'cancelled';

export interface DecisionTarget {
  device: string;
  via: Via;
  outcome?: TargetOutcome;
  /** The vendor's reason on `failed`, or what replaced a cancelled push. */
  detail?: string;
  /** A vendor push sent silently (quiet hours: no sound, lowest interruption level). Extends the contract. */
  silent?: true;
}

export interface Decision {
  id: string;
  route: Route;
  reason: DecisionReason;
  targets: DecisionTarget[];
  /** Epoch ms. */
  at: number;
}

/** `GET /v1/users/{user}` answer. */
export interface UserView {
  user: string;
  owner: string;
  pc: { state: 'active' | 'inactive'; reason?: DecisionReason; sessions: number };
  devices: { device: string; os: string; online: boolean; hasToken: boolean }[];
  /** Messages held for the user (section 4, held messages). */
  held: number;
  /** Messages delivered to the user and not yet read (section 4, read sync): the badge. */
  unread: number;
  /** The user's delivery policy (section 3, `…/policy`), defaults filled in. */
  policy?: UserPolicy;
}

/** `switchboard.events.routed`: the decision plus who and where. */
export interface RoutedEvent extends Decision {
  user: string;
  node: string;
}

/**
 * The routed event of `d`: its fields (the same objects, `targets` included) plus `user` and `node`, as
 * `{ ...d, user, node }` would give them. Built field by field (issue 13): a spread copy with fields added after it
 * cost ~1.2 µs per routed message and gave an object msgpackr encodes ~4x slower than a literal (3.0 against 0.7
 * µs), at every message of a cluster node. A field added to Decision must be added here too (a test compares).
 */
export function routedEvent(d: Decision, user: string, node: string): RoutedEvent {
  return { id: d.id, route: d.route, reason: d.reason, targets: d.targets, at: d.at, user, node };
}
