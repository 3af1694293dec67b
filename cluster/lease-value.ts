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
      return { value: { owner: v.owner, expiresAt: v.expiresAt, epoch: v.epoch }, revision: e.revision };
    }
  } catch {
    // fall through
  }
  return { value: { owner: '', expiresAt: 0, epoch: 0 }, revision: e.revision };
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
