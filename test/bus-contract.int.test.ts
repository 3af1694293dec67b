import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { NatsBus } from '../cluster/nats-bus.js';
import { describeBusContract } from './contracts/bus.contract.js';
import { NatsServer } from './support/nats-server.js';

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server?.dispose();
});

describeBusContract('NatsBus on a real nats-server', async () => {
  const nc: NatsConnection = await connect({ servers: server.url });
  // One connection publishes and subscribes, so a SUB always reaches the server before a later PUB.
  return { bus: new NatsBus(nc), cleanup: () => nc.drain() };
});
