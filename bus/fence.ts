import type { BusMessage } from '../protocol/index.js';
import type { Bus, Subscription } from './bus.js';
import { partitionOf } from './subjects.js';

/**
 * Lease fencing, in one place (cluster only; the embedded node owns every partition and never fences).
 *
 * An owner acts for a user only while it holds the lease of the user's partition (`OwnerFence.mayAct`, asked by
 * the user actors before routing and before acting on a timer), and stamps what it sends to gateways with the
 * lease's `revision` (`FencedBus`). A revision is fixed for a whole tenure and larger than any earlier tenure's,
 * so a gateway that remembers the highest revision seen per partition (`StaleOwnerFilter`) drops deliveries from
 * an owner that was replaced meanwhile (a paused process waking up). The lease itself is kept by
 * cluster/lease-keeper.ts, which implements `OwnerFence`.
 */
export interface Fence {
  /** KV revision that won the lease: fixed for the tenure, increasing across tenures. */
  revision: number;
  /** The tenure's lease epoch (cluster/lease-value.ts `LeaseValue.epoch`). */
  epoch: number;
  /** `LeaseValue.since`: the first epoch of the run of graceful handoffs this tenure continues; absent = `epoch`. */
  since?: number;
}

/** The owner side of the fence. */
export interface OwnerFence {
  /** True while this node holds a valid lease for the user's partition, by its own clock (never asks the server). */
  mayAct(user: string): boolean;
  /** The fence to stamp on work for partition `p`, only while its lease is valid. */
  fence(p: number): Fence | undefined;
}

/** The owner's fence of a partition held through `isValid(p)` / `fence(p)` (LeaseKeeper's shape). */
export function ownerFenceOf(leases: { isValid(p: number): boolean; fence(p: number): Fence | undefined }, partitions: number): OwnerFence {
  return {
    mayAct: (user) => leases.isValid(partitionOf(user, partitions)),
    fence: (p) => leases.fence(p),
  };
}

/**
 * A Bus that stamps each `deliver` with the owner's fence for the user's partition, and drops it when this node no
 * longer holds that lease. Everything else passes through unchanged.
 */
export class FencedBus implements Bus {
  constructor(private readonly inner: Bus, private readonly owner: OwnerFence, private readonly partitions: number) {}

  publish(subject: string, msg: BusMessage): void {
    if ((msg.type === 'deliver' || msg.type === 'frame') && msg.user !== undefined) {
      const p = partitionOf(msg.user, this.partitions);
      const fence = this.owner.fence(p);
      if (!fence) return; // lease gone: the next owner delivers it
      // Built field by field, not `{ ...msg, fence }`: that copy made each delivery ~2 µs dearer to build and encode
      // (issue 13; see routedEvent in protocol/decision.ts).
      const stamped = { partition: p, revision: fence.revision };
      msg = msg.type === 'deliver'
        ? { type: 'deliver', sessionId: msg.sessionId, frame: msg.frame, user: msg.user, fence: stamped }
        : { type: 'frame', sessionId: msg.sessionId, frame: msg.frame, user: msg.user, fence: stamped };
    }
    this.inner.publish(subject, msg);
  }

  subscribe(subject: string, handler: (msg: BusMessage) => void): Subscription {
    return this.inner.subscribe(subject, handler);
  }

  request(subject: string, msg: BusMessage, timeoutMs: number): Promise<BusMessage> {
    return this.inner.request(subject, msg, timeoutMs);
  }

  serve(subject: string, handler: (msg: BusMessage) => Promise<BusMessage> | BusMessage): Subscription {
    return this.inner.serve(subject, handler);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The gateway side: the newest fence seen per partition; a delivery stamped older comes from a replaced owner. */
export class StaleOwnerFilter {
  private readonly newest = new Map<number, number>();

  /** True when `fence` is absent (embedded) or not older than the newest seen for its partition. */
  admits(fence: { partition: number; revision: number } | undefined): boolean {
    if (fence === undefined) return true;
    const newest = this.newest.get(fence.partition) ?? 0;
    if (fence.revision < newest) return false;
    this.newest.set(fence.partition, fence.revision);
    return true;
  }
}
