import { isFree, type LeaseEntry } from './lease-value.js';

/** What a round needs to know of one held lease (times are the injected clock's epoch ms). */
export interface HeldLease {
  /** Local deadline: renewal sent + leaseMs - safety margin. Past it the node must not act for the partition. */
  validUntil: number;
  /** When the last successful write was sent. */
  sentAt: number;
  /** A renewal is on the wire: never two writes at once for one partition. */
  renewing: boolean;
  /** A handoff is under way. */
  releasing: boolean;
}

/** The state a lease round plans from; nothing here does I/O. */
export interface RoundInput {
  now: number;
  nodeId: string;
  partitions: number;
  /** How often held leases are renewed; a lease is renewed once half of this passed since its last write, ms. */
  renewMs: number;
  /** `stopping`: hand everything off and take nothing. */
  state: 'running' | 'stopping';
  /** Owner of each partition by the balanced assignment of the live nodes; undefined while this node is not live. */
  target: readonly string[] | undefined;
  held: ReadonlyMap<number, HeldLease>;
  /** Partitions whose acquisition is on the wire. */
  acquiring: ReadonlySet<number>;
  /** The last lease value seen per partition (watch or own writes). */
  seen: ReadonlyMap<number, LeaseEntry>;
}

/** What the round decides; the keeper carries it out (writes in the background, at most one per partition). */
export interface RoundPlan {
  /** Past their local deadline: stop acting for them now, before any I/O (fencing first). */
  lose: number[];
  renew: number[];
  /** Assigned elsewhere now (or stopping): graceful handoff. */
  handOff: number[];
  /** Assigned here and free (or already ours): write a lease. */
  acquire: number[];
  /** When to run the next round, ms from now: at the latest renewMs, earlier for a deadline or a lapse to act on. */
  nextMs: number;
}

/**
 * One round of the lease keeper as a pure function (like `decide()` for routing): which leases are lost by the
 * local clock, which to renew, hand off and acquire, and when to look again. Tested by a table in
 * test/lease-plan.test.ts; the rules' reasons are in cluster/lease-keeper.ts.
 */
export function planRound(r: RoundInput): RoundPlan {
  const plan: RoundPlan = { lose: [], renew: [], handOff: [], acquire: [], nextMs: r.renewMs };
  for (const [p, h] of r.held) {
    if (r.now >= h.validUntil) {
      plan.lose.push(p);
      continue;
    }
    if (!h.renewing && r.now - h.sentAt >= r.renewMs / 2) plan.renew.push(p);
    plan.nextMs = Math.min(plan.nextMs, Math.max(1, h.validUntil - r.now)); // report a lapse the moment it happens
    if (!h.releasing && (r.state === 'stopping' || (r.target && r.target[p] !== r.nodeId))) plan.handOff.push(p);
  }
  if (!r.target || r.state !== 'running') return plan;
  for (let p = 0; p < r.partitions; p++) {
    if (r.target[p] !== r.nodeId || r.held.has(p) || r.acquiring.has(p)) continue;
    const e = r.seen.get(p);
    if (!e || isFree(e, r.now) || e.value?.owner === r.nodeId) plan.acquire.push(p);
    else plan.nextMs = Math.min(plan.nextMs, Math.max(1, e.value!.expiresAt - r.now + 1)); // come back the moment it lapses
  }
  return plan;
}
