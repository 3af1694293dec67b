import type { Vendor } from './message.js';

/** Routing decisions, PROTOCOL.md sections 3 and 4. */

export type Route = 'pc' | 'mobile' | 'pc_fallback' | 'undeliverable';
export type Via = 'pc' | 'mobile' | Vendor;

/**
 * Why a route was chosen: the PC's state (`pc_active`, the inactive reasons of claim 4, `unreported` for a PC that
 * connected but has sent no presence yet, `stale`, `no_pc`),
 * or `ack_timeout` for a fallback decision.
 */
export type DecisionReason = 'pc_active' | 'idle' | 'screen_locked' | 'client_locked' | 'unreported' | 'stale' | 'no_pc' | 'ack_timeout';

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
}

/** `switchboard.events.routed`: the decision plus who and where. */
export interface RoutedEvent extends Decision {
  user: string;
  node: string;
}
