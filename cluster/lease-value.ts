import type { KV, KvEntry } from '@nats-io/kv';

/**
 * What a lease key holds. nats-server 2.9 has no per-key TTL, so the value carries its own expiry, in the writer's
 * clock; a reader treats the lease as free once `expiresAt` has passed on its own clock (or `owner` is '').
 */
export interface LeaseValue {
  owner: string;
  /** Epoch milliseconds; 0 when released. */
  expiresAt: number;
  /** Counts tenures of this partition: +1 on every acquisition, unchanged by renewals. */
  epoch: number;
  /**
   * The first epoch of the run of graceful handoffs this tenure continues: carried over from a released lease, this
   * tenure's own epoch after a lapsed one (a crash, a pause, a lost lease: that tenure's state is gone). With decision
   * histories saved only at handoffs (SWITCHBOARD_DECISION_SAVE_MS=0), what a tenure saved for the next
   * (cluster/decision-handoff.ts) counts only from it; written behind, every value counts. Absent in values of earlier
   * versions.
   */
  since?: number;
}

/** The last known state of one lease key: `value` null when the key is absent or deleted. */
export interface LeaseEntry {
  value: LeaseValue | null;
  revision: number;
}

export const leaseKey = (p: number): string => `p.${p}`;

export function partitionOfKey(key: string): number | undefined {
  const m = /^p\.(\d+)$/.exec(key);
  return m ? Number(m[1]) : undefined;
}

export function encodeLease(v: LeaseValue): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(v));
}

/** A KV entry as a LeaseEntry; a value that does not parse counts as free (it can be overwritten by revision). */
export function toLeaseEntry(e: KvEntry): LeaseEntry {
  if (e.operation !== 'PUT') return { value: null, revision: e.revision };
  try {
    const v = e.json<Partial<LeaseValue>>();
    if (typeof v?.owner === 'string' && typeof v.expiresAt === 'number' && typeof v.epoch === 'number') {
      const value: LeaseValue = { owner: v.owner, expiresAt: v.expiresAt, epoch: v.epoch };
      if (typeof v.since === 'number') value.since = v.since;
      return { value, revision: e.revision };
    }
  } catch {
    // fall through
  }
  return { value: { owner: '', expiresAt: 0, epoch: 0 }, revision: e.revision };
}

/**
 * `LeaseValue.since` for the tenure that takes a lease last seen as `prev`, with epoch `epoch`: `prev.since` when
 * `prev` was released (owner ''), so a run of graceful handoffs goes on; `epoch` itself when it lapsed, was never
 * held, or was released by a version that kept no `since`.
 */
export function sinceAfter(prev: LeaseValue | null, epoch: number): number {
  return prev !== null && prev.owner === '' && prev.epoch > 0 && typeof prev.since === 'number' ? prev.since : epoch;
}

export function isFree(entry: LeaseEntry | undefined, now: number): boolean {
  return !entry?.value || entry.value.owner === '' || entry.value.expiresAt <= now;
}

/**
 * Writes `value` only if the key is still at `revision` (0 = the key must be absent or deleted). Resolves to the new
 * revision; rejects with a conflict (`isCasConflict`, cluster/jetstream-setup.ts) when someone wrote first.
 * `timeoutMs` (updates only) replaces the bucket's API timeout: a renewal is worth waiting for until the local deadline.
 */
export function writeLease(kv: KV, p: number, value: LeaseValue, revision: number, timeoutMs?: number): Promise<number> {
  const data = encodeLease(value);
  return revision === 0 ? kv.create(leaseKey(p), data) : kv.update(leaseKey(p), data, revision, timeoutMs);
}
