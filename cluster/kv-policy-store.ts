import type { KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { SwitchboardError, type UserPolicy } from '../protocol/index.js';
import type { PolicyStore } from '../store/types.js';
import { keyOf } from './kv-device-registry.js';

const packr = new Packr({ useRecords: false });

/**
 * Policies in a JetStream KV bucket (`<prefix>_policies`), for the cluster: one key per user
 * (`u.<base64url(user)>`) holding the whole policy. A `PUT` replaces the policy, so a plain put (last writer wins)
 * is the contract; it resolves once the KV (a replicated stream) stored it.
 */
export class KvPolicyStore implements PolicyStore {
  constructor(private readonly kv: KV) {}

  async get(user: string): Promise<UserPolicy | undefined> {
    const e = await this.kv.get(keyOf(user));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return packr.unpack(e.value) as UserPolicy;
  }

  async put(user: string, policy: UserPolicy): Promise<void> {
    try {
      await this.kv.put(keyOf(user), packr.pack(policy));
    } catch (e) {
      throw new SwitchboardError('store_failed', `policy not stored: ${(e as Error).message}`, { cause: e });
    }
  }

  async close(): Promise<void> {}
}
