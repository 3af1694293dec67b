import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { msgId, Peer, userView, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Held messages in the cluster (issue 8 part 1, PROTOCOL.md v1.1 section 4): they live in JetStream, so a node
 * SIGKILL keeps them for the next owner; messages for a user whose socket was on a dead gateway are held, not dropped.
 * Three real nodes on a real nats-server.
 */

let nats: NatsServer;
let cluster: Cluster;
const peers: Peer[] = [];

beforeAll(async () => {
  nats = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [nats.url], nodes: 3, partitions: 12, env: { SWITCHBOARD_ACK_TIMEOUT_MS: '1000' } });
}, 60_000);

afterAll(async () => {
  for (const p of peers) p.close();
  await cluster?.dispose();
  await nats?.dispose();
});

const pc = async (node: (typeof cluster.nodes)[number], user: string) => {
  const p = await Peer.open(node, { sub: user, dev: 'laptop', kind: 'pc' });
  peers.push(p);
  p.send({ type: 'presence', state: 'active' });
  return p;
};

describe('held messages in the cluster', () => {
  it('survive a SIGKILL of their owner; a dead gateway\'s user is held, not dropped; both delivered after reconnecting; reads lower the badge', async () => {
    const [a, b, c] = cluster.nodes;
    // u1 is owned by a (killed later); u2 is owned by c and connected through b (killed too).
    const { user: u1 } = await cluster.userOwnedBy((o) => o === cluster.id(a), 'held');
    const { user: u2 } = await cluster.userOwnedBy((o) => o === cluster.id(c), 'dead-gw');
    const held = Array.from({ length: 20 }, (_, i) => msgId(`h${i}`));
    for (const id of held) expect((await c.send({ id, to: u1, text: id })).status).toBe(202);
    await viewUntil(c, u1, (v) => v.held === 20, 'u1: 20 held', 10_000);

    const onB = await pc(b, u2);
    await viewUntil(c, u2, (v) => v.pc.state === 'active', 'u2 active', 15_000);
    await Promise.all([a.kill('SIGKILL'), b.kill('SIGKILL')]);
    await onB.client.closed;
    await cluster.awaitSettled(30_000, [c]);

    // u2's socket died with b: the owner still thinks the PC is there, delivers into the void, times out, holds.
    const lost = Array.from({ length: 5 }, (_, i) => msgId(`g${i}`));
    for (const id of lost) expect((await c.send({ id, to: u2, text: id })).status).toBe(202);
    await viewUntil(c, u2, (v) => v.held === 5, 'u2: 5 held after ack timeouts', 15_000);

    expect((await userView(c, u1)).held).toBe(20);
    const p1 = await pc(c, u1);
    const p2 = await pc(c, u2);
    await until(() => p1.received.length === 20 && p2.received.length === 5, 15_000, 'held replayed');
    expect(p1.received).toEqual(held);
    expect(p2.received).toEqual(lost);
    await viewUntil(c, u1, (v) => v.held === 0, 'u1 drained', 15_000);
    await viewUntil(c, u2, (v) => v.held === 0, 'u2 drained', 15_000);
    // Read sync in the cluster: the badge lives in the KV bucket <prefix>_reads.
    await viewUntil(c, u1, (v) => v.unread === 20, 'u1: 20 unread', 15_000);
    const read = await c.http('POST', `/v1/users/${encodeURIComponent(u1)}/read`, { ids: held.slice(0, 5) });
    expect(read).toMatchObject({ status: 200, body: { unread: 15 } });
    expect(await p1.client.next((f) => f.type === 'clear', 15_000)).toEqual({ type: 'clear', ids: held.slice(0, 5), badge: 15 });
  }, 120_000);
});
