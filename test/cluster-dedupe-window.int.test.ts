import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { awaitDecision, decisions, msgId, uniqueUser } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Section 3's duplicate (`200 duplicate` for an id seen before) in a cluster is JetStream's `Nats-Msg-Id` window on the
 * ingress stream: SWITCHBOARD_DEDUPE_WINDOW_MS must set it, as it sets the embedded inbox's window (the cluster kept
 * JetStream's 2 min whatever the variable said: a 10 min setting still took an id back as new after 2 min).
 */

let server: NatsServer;
let cluster: Cluster;
let nc: NatsConnection;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 1, partitions: 2, env: { SWITCHBOARD_DEDUPE_WINDOW_MS: '1500' } });
  nc = await connect({ servers: server.url });
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await cluster?.dispose();
  await server?.dispose();
});

describe('cluster dedupe window', () => {
  it('is the ingress stream\'s duplicate window, in ns', async () => {
    const info = await (await jetstreamManager(nc)).streams.info('switchboard_ingress');
    expect(info.config.duplicate_window).toBe(1500 * 1_000_000);
  });

  it('an id is a duplicate within it and accepted anew past it (and routed again, as in the embedded node)', async () => {
    const [node] = cluster.nodes;
    const user = uniqueUser('window');
    const id = msgId('w');
    expect((await node.send({ id, to: user })).status).toBe(202);
    expect((await node.send({ id, to: user })).body).toEqual({ id, status: 'duplicate' });
    await awaitDecision(node, user, id);
    // Past the 1.5 s window the same id is new again: polled, each try inside the window answered duplicate.
    await until(async () => (await node.send({ id, to: user })).status === 202, 10_000, 'accepted anew past the window');
    await until(async () => (await decisions(node, user)).filter((d) => d.id === id).length === 2, 10_000, 'routed twice');
  }, 30_000);
});
