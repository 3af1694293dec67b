import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import type { DeviceRegistration, TokenRemovedReason } from '../protocol/index.js';
import { SEEN_RESOLUTION_MS, type DeviceRecord, type DeviceRegistry, type TokenRemoval, type TokenRemovalListener } from '../store/types.js';
import { bucketKeys, isCasConflict, isCasOutcomeUnknown } from './jetstream-setup.js';

const packr = new Packr({ useRecords: false });
/** CAS retries before a write gives up; contention on one user's devices is rare. */
const MAX_CAS_TRIES = 20;
/** A put holds its token's index key this long at most; a holder that died is taken over after it. */
export const TOKEN_LOCK_MS = 15_000;

/** The token index entry: who holds the token; `pending` while a put of it is under way (the per-token lock). */
interface IndexEntry {
  u: string;
  d: string;
  pending?: boolean;
}

/**
 * Device tokens in a JetStream KV bucket, for the cluster: one key per user (`u.<base64url(user)>`) holding all
 * of that user's devices, written by compare-and-set on the key's revision, so concurrent writers from several
 * gateways never lose each other's changes. A write resolves once the KV (a replicated stream) stored it.
 *
 * One token, one device (section 3): an index key per token (`t.<base64url(sha256(token))>`: the token itself is
 * never a key) names its holder. A put of a token takes that key by compare-and-set and marks it pending (a lock
 * per token, so puts of one token from any node run one at a time), stores the user's record, clears the token
 * from the holder the index named (only while that holder still has it), then marks the key done. A put that
 * finds the key pending waits; a pending key older than TOKEN_LOCK_MS (its node died) is taken over.
 * test/kv-registry-contract.int.test.ts races registrations of one token from two connections.
 */
export class KvDeviceRegistry implements DeviceRegistry {
  private readonly onTokenRemoved: TokenRemovalListener;

  constructor(
    private readonly kv: KV,
    private readonly now: () => number = Date.now,
    onTokenRemoved?: TokenRemovalListener,
    /** How long a pending index key holds off other puts of its token (tests shorten it). */
    private readonly lockMs: number = TOKEN_LOCK_MS,
  ) {
    this.onTokenRemoved = onTokenRemoved ?? (() => {});
  }

  async put(user: string, device: string, reg: DeviceRegistration): Promise<DeviceRecord> {
    const rec: DeviceRecord = { device, os: reg.os, token: reg.token, ...(reg.app !== undefined ? { app: reg.app } : {}), updatedAt: this.now() };
    const me: IndexEntry = { u: user, d: device };
    const lock = await this.lockToken(reg.token, me);
    let replaced: DeviceRecord | undefined;
    try {
      await this.change(user, (list) => {
        replaced = list.find((d) => d.device === device);
        return [...list.filter((d) => d.device !== device), rec];
      });
    } catch (e) {
      await this.unlockToken(reg.token, lock);
      throw e;
    }
    const prev = lock.prev;
    if (prev && (prev.u !== user || prev.d !== device)) {
      const removal = await this.clearIf(prev.u, prev.d, (d) => d.token === reg.token, 'moved');
      if (removal) this.onTokenRemoved(removal);
    }
    await this.kv.update(indexKeyOf(reg.token), packr.pack(me), lock.revision);
    // Section 3: every token removed is published; the device's own different previous token is overwritten by the
    // stored record above, so it is reported `replaced` (the same token stored again reports nothing).
    if (replaced?.token !== undefined && replaced.token !== reg.token) {
      await this.dropIndex(replaced.token, user, device);
      this.onTokenRemoved({ user, device, os: replaced.os, token: replaced.token, reason: 'replaced' });
    }
    return rec;
  }

  async remove(user: string, device: string): Promise<boolean> {
    let removed: DeviceRecord | undefined;
    await this.change(user, (list) => {
      removed = list.find((d) => d.device === device);
      return removed ? list.filter((d) => d.device !== device) : undefined;
    });
    if (removed?.token !== undefined) {
      await this.dropIndex(removed.token, user, device);
      this.onTokenRemoved({ user, device, os: removed.os, token: removed.token, reason: 'deleted' });
    }
    return removed !== undefined;
  }

  async clearToken(user: string, device: string, token: string, reason: TokenRemovedReason = 'dead'): Promise<boolean> {
    const removal = await this.clearIf(user, device, (d) => d.token === token, reason);
    if (!removal) return false;
    await this.dropIndex(token, user, device);
    this.onTokenRemoved(removal);
    return true;
  }

  async seen(user: string, device: string, at: number): Promise<void> {
    await this.change(user, (list) => {
      const i = list.findIndex((d) => d.device === device && d.token !== undefined && at - (d.seenAt ?? d.updatedAt) >= SEEN_RESOLUTION_MS);
      return i < 0 ? undefined : list.map((d, j) => (j === i ? { ...d, seenAt: at } : d));
    });
  }

  /** Scans every user key; each node may run it, the compare-and-set lets one of them remove (and report) each token. */
  async prune(before: number): Promise<number> {
    let pruned = 0;
    for (const key of await bucketKeys(this.kv, 'u.>')) {
      const user = Buffer.from(key.slice(2), 'base64url').toString('utf8');
      let stale: DeviceRecord[] = [];
      await this.change(user, (list) => {
        stale = list.filter((d) => d.token !== undefined && Math.max(d.updatedAt, d.seenAt ?? 0) < before);
        return stale.length === 0 ? undefined : list.map((d) => (stale.includes(d) ? withoutToken(d, this.now()) : d));
      });
      for (const d of stale) {
        await this.dropIndex(d.token!, user, d.device);
        this.onTokenRemoved({ user, device: d.device, os: d.os, token: d.token!, reason: 'pruned' });
        pruned++;
      }
    }
    return pruned;
  }

  async list(user: string): Promise<DeviceRecord[]> {
    return (await this.read(user)).list;
  }

  async close(): Promise<void> {}

  /** Clears the device's token when `match` holds for its record; resolves with what was removed. */
  private async clearIf(user: string, device: string, match: (d: DeviceRecord) => boolean, reason: TokenRemovedReason): Promise<TokenRemoval | undefined> {
    let removal: TokenRemoval | undefined;
    await this.change(user, (list) => {
      const i = list.findIndex((d) => d.device === device && d.token !== undefined && match(d));
      removal = i < 0 ? undefined : { user, device, os: list[i].os, token: list[i].token!, reason };
      return i < 0 ? undefined : list.map((d, j) => (j === i ? withoutToken(d, this.now()) : d));
    });
    return removal;
  }

  /**
   * Takes the token's index key for `me`, marked pending, by compare-and-set; waits while another put holds it
   * (up to TOKEN_LOCK_MS of its age). Resolves with the holder it names and the revision to finish with.
   */
  private async lockToken(token: string, me: IndexEntry): Promise<{ prev?: IndexEntry; revision: number }> {
    const key = indexKeyOf(token);
    const data = packr.pack({ ...me, pending: true });
    for (let attempt = 0; ; attempt++) {
      const e = await this.kv.get(key);
      const cur = e?.operation === 'PUT' && e.value.length > 0 ? (packr.unpack(e.value) as IndexEntry) : undefined;
      // Lock age by wall time against the server's stamp: a dead holder's lock lapses whatever clock is injected.
      const held = cur?.pending === true && Date.now() - e!.created.getTime() < this.lockMs;
      if (!held) {
        try {
          const revision = e ? await this.kv.update(key, data, e.revision) : await this.kv.create(key, data);
          return { prev: cur && { u: cur.u, d: cur.d }, revision };
        } catch (err) {
          if (!isCasConflict(err) && !isCasOutcomeUnknown(err)) throw err; // both: read again and retry
        }
      }
      await sleep(Math.min(2 + attempt * 2, 50));
    }
  }

  /** A put that failed before storing its record gives the index key back to the holder it named (best effort). */
  private async unlockToken(token: string, lock: { prev?: IndexEntry; revision: number }): Promise<void> {
    const key = indexKeyOf(token);
    try {
      if (lock.prev) await this.kv.update(key, packr.pack(lock.prev), lock.revision);
      else await this.kv.delete(key, { previousSeq: lock.revision });
    } catch {
      // the lock lapses after TOKEN_LOCK_MS anyway
    }
  }

  /** Deletes the token's index key while it still names (user, device); only saves space, so failures are ignored. */
  private async dropIndex(token: string, user: string, device: string): Promise<void> {
    const key = indexKeyOf(token);
    try {
      const e = await this.kv.get(key);
      if (e?.operation !== 'PUT' || e.value.length === 0) return;
      const holder = packr.unpack(e.value) as IndexEntry;
      if (holder.u === user && holder.d === device && holder.pending !== true) await this.kv.delete(key, { previousSeq: e.revision });
    } catch {
      // a newer put took the key meanwhile, or the KV is unreachable: the entry is harmless either way
    }
  }

  /** Read-modify-write by revision; `edit` returns undefined for "no change". */
  private async change(user: string, edit: (list: DeviceRecord[]) => DeviceRecord[] | undefined): Promise<void> {
    for (let i = 0; i < MAX_CAS_TRIES; i++) {
      const { list, revision } = await this.read(user);
      const next = edit(list);
      if (next === undefined) return;
      try {
        const data = packr.pack(next);
        if (revision === 0) await this.kv.create(keyOf(user), data);
        else await this.kv.update(keyOf(user), data, revision);
        return;
      } catch (e) {
        if (!isCasConflict(e) && !isCasOutcomeUnknown(e)) throw e;
      }
    }
    throw new Error(`device registry: too much contention on one user's devices`);
  }

  private async read(user: string): Promise<{ list: DeviceRecord[]; revision: number }> {
    const e = await this.kv.get(keyOf(user));
    if (!e) return { list: [], revision: 0 };
    // A deleted or purged key reads as an empty list; its revision still guards the next write.
    if (e.operation !== 'PUT' || e.value.length === 0) return { list: [], revision: e.revision };
    return { list: packr.unpack(e.value) as DeviceRecord[], revision: e.revision };
  }
}

function withoutToken(d: DeviceRecord, at: number): DeviceRecord {
  const { token: _t, seenAt: _seen, ...rest } = d;
  return { ...rest, updatedAt: at };
}

export function keyOf(user: string): string {
  return `u.${Buffer.from(user, 'utf8').toString('base64url')}`;
}

/** The index key of a token: a digest, so tokens never appear in key names (stream subjects, logs). */
export function indexKeyOf(token: string): string {
  return `t.${createHash('sha256').update(token, 'utf8').digest('base64url')}`;
}

