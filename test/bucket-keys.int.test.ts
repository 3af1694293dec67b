import { Kvm, type KV } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { bucketKeys } from '../cluster/jetstream-setup.js';
import { KvDeviceRegistry } from '../cluster/kv-device-registry.js';
import { Membership } from '../cluster/membership.js';
import { natsForFile } from './support/nats-server.js';

/**
 * Listing a bucket's keys without nats.js `kv.keys()` (cluster/jetstream-setup.ts `bucketKeys`): a 3-node bench start
 * once hung for good in membership's partition check, inside `kv.keys()`, which went on yielding the other nodes'
 * beats (1,037 of them in a heap snapshot of the hung node) and never ended: nats.js ends it only on a message with
 * pending 0 or after 5 s without messages, and beats every second on nats-server 2.9.10 gave neither.
 */

const nats = natsForFile();
let n = 0;

/** `kv` with `keys()` refused: the start-up and prune paths must list keys another way. */
function withoutKeys(kv: KV): KV {
  (kv as { keys: unknown }).keys = () => {
    throw new Error('kv.keys() used');
  };
  return kv;
}

describe('bucketKeys', () => {
  it('lists the keys under a filter, each once, whatever the history, also while they are rewritten', async () => {
    const kv = await new Kvm(nats.nc).create(`keys_${++n}`, { history: 5 });
    for (let i = 0; i < 3; i++) for (const k of ['n.a', 'n.b', 'n.c_d', 'u.x']) await kv.put(k, String(i));
    await kv.delete('n.b'); // a delete marker: still listed (callers read each key)
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await kv.put(i % 2 ? 'n.a' : 'n.c_d', String(i));
    })();
    try {
      for (let round = 0; round < 5; round++) expect((await bucketKeys(kv, 'n.>')).sort()).toEqual(['n.a', 'n.b', 'n.c_d']);
      expect(await bucketKeys(kv, 'u.>')).toEqual(['u.x']);
      expect(await bucketKeys(kv, 'z.>')).toEqual([]);
    } finally {
      writing = false;
      await writer;
    }
  });

  it('membership starts and the device registry prunes without kv.keys()', async () => {
    const prefix = `keys${++n}`;
    const other = new Membership({ nc: nats.nc, prefix, nodeId: 'other', partitions: 8, beatMs: 100, deadAfterMs: 1000 });
    await other.start();
    const m = new Membership({ nc: nats.nc, prefix, nodeId: 'me', partitions: 8, beatMs: 100, deadAfterMs: 1000 });
    // The bucket exists (`other` made it): refuse keys() on every handle this process opens on it from here on.
    const open = Kvm.prototype.open;
    Kvm.prototype.open = async function (this: Kvm, ...args: Parameters<Kvm['open']>) {
      return withoutKeys(await open.apply(this, args));
    };
    try {
      await m.start();
      await expect.poll(() => m.live(), { timeout: 5000 }).toEqual(['me', 'other']);
    } finally {
      Kvm.prototype.open = open;
      await m.leave();
      await other.leave();
    }
    const kv = await new Kvm(nats.nc).create(`devices_${++n}`, { history: 1 });
    const removed: string[] = [];
    const registry = new KvDeviceRegistry(withoutKeys(kv), () => 10_000, (r) => removed.push(`${r.user}/${r.device}`));
    await registry.put('u1', 'old', { os: 'android', token: 'old-tok' });
    expect(await registry.prune(20_000)).toBe(1);
    expect(removed).toEqual(['u1/old']);
  });
});
