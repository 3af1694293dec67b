import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { KvPolicyStore } from '../cluster/kv-policy-store.js';
import { describePolicyStoreContract } from './contracts/policy-store.contract.js';
import { NatsServer } from './support/nats-server.js';

/** The PolicyStore contract against a JetStream KV bucket on a real nats-server (the cluster's policy store). */

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server?.dispose();
});

let n = 0;
describePolicyStoreContract('KvPolicyStore on a real nats-server', async () => {
  const conns: NatsConnection[] = [await connect({ servers: server.url })];
  const bucket = `policies_${++n}`;
  const kv = await new Kvm(conns[0]).create(bucket, { history: 1 });
  return {
    store: new KvPolicyStore(kv),
    reopen: async () => {
      const nc = await connect({ servers: server.url });
      conns.push(nc);
      return new KvPolicyStore(await new Kvm(nc).open(bucket));
    },
    cleanup: async () => {
      for (const c of conns) await c.close();
    },
  };
});
