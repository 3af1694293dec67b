import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamHeldStore } from '../cluster/jetstream-held-store.js';
import { describeHeldStoreContract } from './contracts/held-store.contract.js';
import { NatsServer } from './support/nats-server.js';

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server?.dispose();
});

let n = 0;
const openStore = async (nc: NatsConnection, prefix: string, holdMax = 1000) =>
  JetStreamHeldStore.open(nc, await new Kvm(nc).create(`${prefix}_reads`, { history: 1 }), { prefix, partitions: 4, holdMax });

describeHeldStoreContract('JetStreamHeldStore on a real nats-server', async () => {
  const conns: NatsConnection[] = [await connect({ servers: server.url })];
  const prefix = `held${++n}`;
  return {
    store: await openStore(conns[0], prefix),
    // Another connection, as the next owner after a failover would open it.
    reopen: async () => {
      const nc = await connect({ servers: server.url });
      conns.push(nc);
      return openStore(nc, prefix);
    },
    cleanup: async () => {
      for (const c of conns) await c.close();
    },
  };
});

describe('JetStreamHeldStore', () => {
  it('max_msgs_per_subject = SWITCHBOARD_HOLD_MAX: JetStream itself drops a user\'s oldest first', async () => {
    const nc = await connect({ servers: server.url });
    try {
      const store = await openStore(nc, 'heldcap', 3);
      const now = Date.now();
      for (let i = 1; i <= 5; i++) await store.hold('u@x', { msg: { id: `m${i}`, to: 'u@x', acceptedAt: now + i }, expiresAt: now + 60_000 });
      const again = await openStore(nc, 'heldcap', 3);
      expect((await again.list('u@x', now)).map((h) => h.msg.id)).toEqual(['m3', 'm4', 'm5']);
    } finally {
      await nc.close();
    }
  });
});
