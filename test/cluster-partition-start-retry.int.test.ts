import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../bus/subjects.js';
import { readyz } from './support/cluster.js';
import { NodeProcess } from './support/node-process.js';
import { NatsServer } from './support/nats-server.js';
import { msgId, Peer } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * A partition whose lease a node won but whose ingress consumer it could not create (in CI: JetStream not answering
 * while a nats-server of the cluster restarted) must be served once JetStream lets it, not left leased and never
 * consumed: its accepted messages stayed in the stream, never routed, for as long as the node ran. Here the failure is
 * JetStream's own refusal on a work-queue stream: a second consumer with the partition's filter subject ("filtered
 * consumer not unique on workqueue stream"), put there before the node starts and deleted once the node has failed.
 */

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('a partition whose consumer could not be created', () => {
  it('is served once JetStream allows its consumer: the message accepted meanwhile is delivered, the router /readyz is 503 until then', async () => {
    const server = await NatsServer.start();
    cleanups.push(() => server.dispose());
    const nc = await connect({ servers: server.url });
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'switchboard_ingress', subjects: ['switchboard.in.*'], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
    await jsm.consumers.add('switchboard_ingress', { durable_name: 'blocker', filter_subject: 'switchboard.in.1', ack_policy: AckPolicy.Explicit });

    // The router owns both partitions; the gateway (ready without owning any) takes the phone and the message.
    const start = async (id: string, roles: string) => {
      const node = await NodeProcess.start({ env: { SWITCHBOARD_NATS_URL: server.url, SWITCHBOARD_NODE_ID: id, SWITCHBOARD_PARTITIONS: '2', SWITCHBOARD_ROLES: roles } });
      cleanups.push(async () => { await node.stop(); await node.removeData(); });
      return node;
    };
    const [router, gateway] = await Promise.all([start('retry-router', 'router,sender'), start('retry-gateway', 'gateway')]);
    const failures = () => router.lines.filter((l) => l.includes('acquire handler failed') && l.includes('"partition":1')).length;
    await until(() => failures() >= 2, 15_000, 'partition 1 failing to start, twice');
    expect(await readyz(router)).toBe(false);

    let user: string;
    do user = `retry-${msgId('u')}`;
    while (partitionOf(user, 2) !== 1);
    const phone = await Peer.open(gateway, { sub: user, dev: 'phone', kind: 'mobile', os: 'android' });
    cleanups.push(async () => phone.close());
    const id = msgId('while-unserved');
    expect((await gateway.send({ id, to: user, text: 'accepted while its partition is not consumed' })).status).toBe(202);
    expect(phone.count(id)).toBe(0);

    await jsm.consumers.delete('switchboard_ingress', 'blocker');
    await until(() => phone.count(id) === 1, 15_000, 'the message delivered once the partition is consumed');
    await until(() => readyz(router), 10_000, '/readyz 200 once both partitions are served');
    expect(router.lines.some((l) => l.includes('acquire handler succeeded after failing') && l.includes('"partition":1'))).toBe(true);
  }, 60_000);
});
