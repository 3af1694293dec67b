import type { KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import type { DeviceRegistration } from '../protocol/index.js';
import type { DeviceRecord, DeviceRegistry } from '../store/types.js';

const packr = new Packr({ useRecords: false });
/** CAS retries before a write gives up; contention on one user's devices is rare. */
const MAX_CAS_TRIES = 20;

/**
 * Device tokens in a JetStream KV bucket, for the cluster: one key per user (`u.<base64url(user)>`) holding all
 * of that user's devices, written by compare-and-set on the key's revision, so concurrent writers from several
 * gateways never lose each other's changes. A write resolves once the KV (a replicated stream) stored it.
 */
export class KvDeviceRegistry implements DeviceRegistry {
  constructor(private readonly kv: KV, private readonly now: () => number = Date.now) {}

  async put(user: string, device: string, reg: DeviceRegistration): Promise<DeviceRecord> {
    const rec: DeviceRecord = { device, os: reg.os, token: reg.token, ...(reg.app !== undefined ? { app: reg.app } : {}), updatedAt: this.now() };
    await this.change(user, (list) => [...list.filter((d) => d.device !== device), rec]);
    return rec;
  }

  async remove(user: string, device: string): Promise<boolean> {
    let removed = false;
    await this.change(user, (list) => {
      const next = list.filter((d) => d.device !== device);
      removed = next.length !== list.length;
      return removed ? next : undefined;
    });
    return removed;
  }

  async clearToken(user: string, device: string, token: string): Promise<boolean> {
    let cleared = false;
    await this.change(user, (list) => {
      const i = list.findIndex((d) => d.device === device && d.token === token);
      cleared = i >= 0;
      if (!cleared) return undefined;
      const { token: _gone, ...rest } = list[i];
      return list.map((d, j) => (j === i ? { ...rest, updatedAt: this.now() } : d));
    });
    return cleared;
  }

  async list(user: string): Promise<DeviceRecord[]> {
    return (await this.read(user)).list;
  }

  async close(): Promise<void> {}

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
        if (!isCasConflict(e)) throw e;
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

export function keyOf(user: string): string {
  return `u.${Buffer.from(user, 'utf8').toString('base64url')}`;
}

/** nats-server answers a failed compare-and-set with "wrong last sequence" (10071) or "key exists". */
function isCasConflict(e: unknown): boolean {
  const s = String((e as Error)?.message ?? e);
  return /wrong last sequence|key exists|10071/i.test(s);
}
