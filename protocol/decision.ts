import type { Vendor } from './message.js';

/** Routing decisions, PROTOCOL.md sections 3 and 4. */

/** `held`: nothing reachable; the message waits, durably, for the user to become reachable (section 4, held messages). */
export type Route = 'pc' | 'mobile' | 'pc_fallback' | 'held' | 'undeliverable';
export type Via = 'pc' | 'mobile' | Vendor;

/**
 * Why a route was chosen: the PC's state (`pc_active`, the inactive reasons of claim 4, `stale`, `no_pc`),
 * or `ack_timeout` for a fallback decision.
 */
export type DecisionReason = 'pc_active' | 'idle' | 'screen_locked' | 'client_locked' | 'stale' | 'no_pc' | 'ack_timeout';

/** Final state of one target; absent while it is in flight. Extends the contract (section 3 is silent). */
export type TargetOutcome = 'acked' | 'ack_timeout' | 'ok' | 'dead_token' | 'failed' | 'cancelled';

export interface DecisionTarget {
  device: string;
  via: Via;
  outcome?: TargetOutcome;
  /** The vendor's reason on `failed`, or what replaced a cancelled push. */
  detail?: string;
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
}

/** `switchboard.events.routed`: the decision plus who and where. */
export interface RoutedEvent extends Decision {
  user: string;
  node: string;
}
