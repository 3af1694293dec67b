import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { until } from './support/ws-client.js';

/**
 * Issue 12, dashboard in a cluster: the figures carry the live nodes, every partition's owner, and the lease
 * takeovers a node made after another one crashed. Real nats-server, real nodes, a real SIGKILL.
 */
const P = 8;

describe('dashboard figures in a cluster', () => {
  let server: NatsServer;
  let cluster: Cluster;

  beforeAll(async () => {
    server = await NatsServer.start();
    cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: P });
  }, 60_000);

  afterAll(async () => {
    await cluster?.dispose();
    await server?.dispose();
  });

  const figures = async (i: number) => (await cluster.nodes[i].http('GET', '/v1/dashboard')).body;

  it('shows the nodes and who owns each partition', async () => {
    const [a, b] = cluster.nodes.map((n) => cluster.id(n));
    const f = await figures(0);
    expect(f.cluster.nodes).toEqual([a, b].sort());
    expect(f.cluster.partitions).toHaveLength(P);
    const owned = await cluster.ownedByNode();
    for (const id of [a, b]) expect(f.cluster.partitions.filter((p: { owner: string }) => p.owner === id)).toHaveLength(owned.get(id)!);
    expect(f.ownedPartitions).toBe(owned.get(a));
    expect(f.leaseTakeovers).toBe(0);
  });

  it('counts the takeovers after a node is killed', async () => {
    const [survivor, victim] = cluster.nodes;
    const lost = (await cluster.ownedByNode()).get(cluster.id(victim))!;
    expect(lost).toBeGreaterThan(0);
    await victim.kill('SIGKILL');
    await until(async () => (await figures(0)).ownedPartitions === P, 20_000, 'the survivor to own every partition');
    const f = await figures(0);
    expect(f.leaseTakeovers).toBe(lost);
    expect(f.cluster.nodes).toEqual([cluster.id(survivor)]);
    expect(new Set(f.cluster.partitions.map((p: { owner: string }) => p.owner))).toEqual(new Set([cluster.id(survivor)]));
  }, 40_000);
});
