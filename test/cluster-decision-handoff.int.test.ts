import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { accept, awaitDecision, decisions, msgId, uniqueUser } from './support/scenario.js';

/**
 * PROTOCOL.md section 3 (`GET …/decisions`: at least the last 100 kept) across a graceful partition handoff: the
 * owner stopped with SIGTERM saves its users' decisions (cluster/decision-handoff.ts) and the next owner answers with
 * them, its own newer ones first.
 */

let server: NatsServer;
let cluster: Cluster;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: 4 });
}, 60_000);

afterAll(async () => {
  await cluster?.dispose();
  await server?.dispose();
});

describe('cluster decision history', () => {
  it('outlives a graceful handoff: the next owner answers with the previous owner\'s decisions', async () => {
    const [first, second] = cluster.nodes;
    const firstId = cluster.id(first);
    const { user } = await cluster.userOwnedBy((owner) => owner === firstId, uniqueUser('handoff'));
    const before = Array.from({ length: 3 }, (_, i) => msgId(`before${i}`));
    // No session: each is held, one decision each.
    for (const id of before) {
      await accept(second, { id, to: user });
      await awaitDecision(second, user, id);
    }
    const atOwner = await decisions(second, user);
    expect(atOwner.map((d) => d.id)).toEqual([...before].reverse());

    expect(await first.stop()).toEqual({ code: 0, signal: null });
    await cluster.awaitSettled(20_000, [second]);
    expect(await cluster.ownerOf(user, second)).toBe(cluster.id(second));

    const after = msgId('after');
    await accept(second, { id: after, to: user });
    await awaitDecision(second, user, after);
    const now = await decisions(second, user);
    expect(now[0].id).toBe(after);
    expect(now.slice(1)).toEqual(atOwner);
  }, 60_000);
});
