import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { Cluster, NatsClient } from './support/cluster.js';
import type { NodeProcess } from './support/node-process.js';
import { NatsServer } from './support/nats-server.js';
import { awaitOutcome, decisionsFor, msgId, Peer, uniqueUser, userView, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Cluster routing end to end (issue 4): three nodes on one nats-server; clients on a gateway that does not own their
 * user; messages in over NATS request/reply (MessagePack and JSON) and HTTP on a third node.
 */

const P = 12;
let server: NatsServer;
let cluster: Cluster;
let chat: NatsClient;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 3, partitions: P });
  chat = await NatsClient.connect([server.url]);
  await chat.recordEvents();
}, 60_000);

afterAll(async () => {
  await chat?.close();
  await cluster?.dispose();
  await server?.dispose();
});

describe('cluster routing', () => {
  it('spreads the partitions: each node owns <= ceil(P/N), the sum is P', async () => {
    const owned = await cluster.awaitSettled();
    expect([...owned.values()].reduce((a, b) => a + b, 0)).toBe(P);
    for (const [, n] of owned) expect(n).toBeLessThanOrEqual(Math.ceil(P / 3));
  });

  it('routes by PC presence for clients on a non-owner gateway; NATS (msgpack, JSON) and HTTP ingress; acks and events', async () => {
    const { user, owner } = await cluster.userOwnedBy(() => true, 'route');
    const ownerNode = cluster.byId.get(owner)!;
    const others = cluster.nodes.filter((n) => n !== ownerNode);
    const gateway: NodeProcess = others[0];
    const third: NodeProcess = others[1];

    // Every node agrees on the owner.
    for (const n of cluster.nodes) expect((await userView(n, user)).owner).toBe(owner);

    const pc = await Peer.open(gateway, { sub: user, dev: 'pc1', kind: 'pc' });
    const phone = await Peer.open(gateway, { sub: user, dev: 'ph1', kind: 'mobile', os: 'android' });
    try {
      pc.send({ type: 'presence', state: 'active' });
      await viewUntil(third, user, (v) => v.pc.state === 'active' && v.devices.some((d) => d.device === 'ph1' && d.online), 'PC active, phone online');

      // 1. PC active, over NATS MessagePack: the PC gets it, the phone does not.
      const m1 = msgId('nats-mp');
      expect(await chat.send({ id: m1, to: user, title: 't', text: 'hello' })).toEqual({ id: m1, status: 'accepted' });
      expect(await chat.send({ id: m1, to: user, title: 't', text: 'hello' })).toEqual({ id: m1, status: 'duplicate' });
      await pc.message(m1);
      for (const n of cluster.nodes) expect((await awaitOutcome(n, user, m1, 'pc1')).outcome).toBe('acked');
      const d1 = await decisionsFor(gateway, user, m1);
      expect(d1.map((d) => d.route)).toEqual(['pc']);
      expect(phone.count(m1)).toBe(0);

      // 2. PC inactive (screen locked), over NATS JSON: the phone gets it directly.
      pc.send({ type: 'presence', state: 'inactive', reason: 'screen_locked' });
      await viewUntil(third, user, (v) => v.pc.state === 'inactive' && v.pc.reason === 'screen_locked', 'PC inactive');
      const m2 = msgId('nats-json');
      expect(await chat.send({ id: m2, to: user, text: 'json' }, { json: true })).toEqual({ id: m2, status: 'accepted' });
      expect(await chat.send({ id: m2, to: user, text: 'json' }, { json: true })).toEqual({ id: m2, status: 'duplicate' });
      await phone.message(m2);
      const t2 = await awaitOutcome(third, user, m2, 'ph1');
      expect(t2).toMatchObject({ via: 'mobile', outcome: 'acked' });
      expect((await decisionsFor(ownerNode, user, m2)).map((d) => [d.route, d.reason])).toEqual([['mobile', 'screen_locked']]);

      // 3. Over HTTP on the third node.
      const m3 = msgId('http');
      expect((await third.send({ id: m3, to: user, text: 'http' })).status).toBe(202);
      const dup = await third.send({ id: m3, to: user, text: 'http' });
      expect(dup.status).toBe(200);
      expect(dup.body).toEqual({ id: m3, status: 'duplicate' });
      await phone.message(m3);
      expect((await awaitOutcome(gateway, user, m3, 'ph1')).outcome).toBe('acked');

      // Every id exactly once, each on the right device only.
      expect(pc.received.filter((id) => [m1, m2, m3].includes(id))).toEqual([m1]);
      expect(phone.received.filter((id) => [m1, m2, m3].includes(id))).toEqual([m2, m3]);

      // Routed events: one per decision, with user and the owner's node id.
      await until(() => [m1, m2, m3].every((id) => chat.eventsFor(id).length > 0), 5000, 'routed events');
      for (const [id, route] of [[m1, 'pc'], [m2, 'mobile'], [m3, 'mobile']] as const) {
        const evs = chat.eventsFor(id);
        expect(evs).toHaveLength(1);
        expect(evs[0]).toMatchObject({ id, user, node: owner, route });
        expect(Array.isArray(evs[0].targets)).toBe(true);
      }
      for (const n of cluster.nodes) expect((await userView(n, user)).owner).toBe(owner);
    } finally {
      pc.close();
      phone.close();
    }
  });

  it('answers bad NATS input with {error:{code,message}} and keeps serving', async () => {
    const user = uniqueUser('bad');
    const packr = new Packr({ useRecords: false });
    const expectError = (reply: any) => {
      expect(reply).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
      expect(reply.error.code.length).toBeGreaterThan(0);
    };
    expectError(await chat.sendRaw(Uint8Array.from([0x92, 0x01]))); // truncated MessagePack
    expectError(await chat.sendRaw(new TextEncoder().encode('{"id": "x", "to":'), { json: true })); // broken JSON
    expectError(await chat.sendRaw(new TextEncoder().encode('not json at all'), { json: true }));
    expectError(await chat.send({ to: user, text: 'no id' }));
    expectError(await chat.send({ to: user, text: 'no id' }, { json: true }));
    expectError(await chat.send({ id: '', to: user }));
    expectError(await chat.sendRaw(packr.pack('a string, not an object')));
    expectError(await chat.sendRaw(packr.pack(null)));
    expectError(await chat.send({ id: msgId(), to: user, data: { n: 1 } })); // data values must be strings

    // Every node still serves: a fresh user with a phone gets a message sent over NATS right after.
    const gateway = cluster.nodes[1];
    const phone = await Peer.open(gateway, { sub: user, dev: 'ph', kind: 'mobile', os: 'ios' });
    try {
      await viewUntil(gateway, user, (v) => v.devices.some((d) => d.online), 'phone online');
      for (let i = 0; i < 3; i++) {
        const id = msgId('after-bad');
        expect(await chat.send({ id, to: user, text: 'ok' })).toEqual({ id, status: 'accepted' });
        await phone.message(id);
      }
      for (const n of cluster.nodes) expect((await n.http('GET', '/readyz', undefined, { auth: false })).status).toBe(200);
    } finally {
      phone.close();
    }
  });
});
