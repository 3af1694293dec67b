import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvDeviceRegistry } from '../cluster/kv-device-registry.js';
import { describeDeviceRegistryContract } from './contracts/device-registry.contract.js';
import { NatsServer } from './support/nats-server.js';

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server?.dispose();
});

let n = 0;
describeDeviceRegistryContract('KvDeviceRegistry on a real nats-server', async () => {
  const conns: NatsConnection[] = [await connect({ servers: server.url })];
  const bucket = `devices_${++n}`;
  const kv = await new Kvm(conns[0]).create(bucket, { history: 1 });
  return {
    registry: new KvDeviceRegistry(kv),
    reopen: async () => {
      const nc = await connect({ servers: server.url });
      conns.push(nc);
      return new KvDeviceRegistry(await new Kvm(nc).open(bucket));
    },
    cleanup: async () => {
      for (const c of conns) await c.close();
    },
  };
});

describe('KvDeviceRegistry across gateways', () => {
  it('loses no device when two nodes write the same user at once (compare-and-set)', async () => {
    const a = await connect({ servers: server.url });
    const b = await connect({ servers: server.url });
    try {
      await new Kvm(a).create('devices_race', { history: 1 });
      const ra = new KvDeviceRegistry(await new Kvm(a).open('devices_race'));
      const rb = new KvDeviceRegistry(await new Kvm(b).open('devices_race'));
      await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? ra : rb).put('shared:user@x', `d${i}`, { os: 'android', token: `t${i}` })));
      const devices = (await ra.list('shared:user@x')).map((d) => d.device).sort();
      expect(devices).toEqual(Array.from({ length: 20 }, (_, i) => `d${i}`).sort());
    } finally {
      await a.close();
      await b.close();
    }
  });
});
