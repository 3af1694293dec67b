import { headers } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, NatsClient } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { awaitDecision, enc, msgId, Peer, settled, userView, viewUntil } from './support/scenario.js';
import { signToken, TestClient, until } from './support/ws-client.js';

/**
 * Issue 10 in the cluster: two nodes on a real nats-server. The policy is stored in the JetStream KV bucket by
 * whichever node takes the PUT, the owner of the user's partition (possibly the other node) reads it again on
 * `policy_changed` and sends a `policy` frame to the PC on the other node's gateway, and the welcome on any
 * gateway carries its idleAfterMs. Batches over `switchboard.send.batch`.
 */

const packr = new Packr({ useRecords: false });
let server: NatsServer;
let cluster: Cluster;
let chat: NatsClient;

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: 8 });
  chat = await NatsClient.connect([server.url]);
}, 60_000);

afterAll(async () => {
  await chat?.close();
  await cluster?.dispose();
  await server?.dispose();
});

async function batch(body: unknown, json: boolean): Promise<any> {
  const h = headers();
  h.set('Content-Type', 'application/json');
  const data = json ? new TextEncoder().encode(JSON.stringify(body)) : packr.pack(body);
  const reply = await chat.nc.request('switchboard.send.batch', data, { timeout: 10_000, ...(json ? { headers: h } : {}) });
  return json ? JSON.parse(new TextDecoder().decode(reply.data)) : packr.unpack(reply.data);
}

describe('policy in the cluster', () => {
  it('a PUT on the non-owner reaches the owner: always sends to the foreground phone while the PC is active', async () => {
    const { user, owner } = await cluster.userOwnedBy(() => true, 'cpol');
    const ownerNode = cluster.byId.get(owner)!;
    const other = cluster.nodes.find((n) => n !== ownerNode)!;
    const pc = await Peer.open(other, { sub: user, dev: 'pc', kind: 'pc' });
    const phone = await Peer.open(other, { sub: user, dev: 'phone', kind: 'mobile', os: 'android' });
    try {
      pc.send({ type: 'presence', state: 'active' });
      await viewUntil(ownerNode, user, (v) => v.pc.state === 'active' && v.devices.some((d) => d.online), 'PC active, phone online');
      const m1 = msgId('c');
      expect(await chat.send({ id: m1, to: user, text: 'before' })).toEqual({ id: m1, status: 'accepted' });
      await pc.message(m1);
      expect(await awaitDecision(ownerNode, user, m1, settled)).toMatchObject({ route: 'pc', reason: 'pc_active' });

      const put = await other.http('PUT', `/v1/users/${enc(user)}/policy`, { mobile: 'always', idleAfterSeconds: 30 });
      expect(put.status).toBe(200);
      for (const n of cluster.nodes) expect((await n.http('GET', `/v1/users/${enc(user)}/policy`)).body).toEqual({ mobile: 'always', idleAfterSeconds: 30 });
      await until(async () => ((await userView(ownerNode, user)) as any).policy?.mobile === 'always', 5000, 'the owner read the new policy');
      // The open PC learns the new threshold at once, through the gateway that holds it (not the owner's).
      expect(await pc.client.next((f) => f.type === 'policy')).toEqual({ type: 'policy', idleAfterMs: 30_000 });

      const m2 = msgId('c');
      expect(await chat.send({ id: m2, to: user, text: 'after' })).toEqual({ id: m2, status: 'accepted' });
      await pc.message(m2);
      await phone.message(m2);
      const d = await awaitDecision(other, user, m2, settled);
      expect(d).toMatchObject({ route: 'pc', reason: 'policy_always' });
      expect(d.targets.map((t) => `${t.device}:${t.via}:${t.outcome}`)).toEqual(['pc:pc:acked', 'phone:mobile:acked']);
      expect(phone.count(m1)).toBe(0);
      expect(phone.client.frames.filter((f) => f.type === 'policy')).toEqual([]); // m2 left the owner after any policy frame

      // Welcome on either gateway carries the stored idle threshold.
      for (const n of cluster.nodes) {
        const c = await TestClient.connect(n.wsUrl);
        c.send({ type: 'hello', token: await signToken(cluster.jwtSecret, { sub: user, dev: `pc-${n.port}`, kind: 'pc' }) });
        expect((await c.next((f) => f.type === 'welcome')).idleAfterMs).toBe(30_000);
        c.close();
      }
    } finally {
      pc.close();
      phone.close();
    }
  });
});

describe('batch sends over NATS (section 3, switchboard.send.batch)', () => {
  it.each([false, true])('JSON %s: one result per message in order, duplicates and bad ones alone; accepted ones routed', async (json) => {
    const { user } = await cluster.userOwnedBy(() => true, 'cbatch');
    const pc = await Peer.open(cluster.nodes[0], { sub: user, dev: 'pc', kind: 'pc' });
    try {
      pc.send({ type: 'presence', state: 'active' });
      await viewUntil(cluster.nodes[1], user, (v) => v.pc.state === 'active', 'PC active');
      const ids = Array.from({ length: 50 }, () => msgId('nb'));
      const reply = await batch({ messages: [...ids.map((id) => ({ id, to: user, text: id })), { id: 'broken', to: user, ttlSeconds: 'x' }, { id: ids[0], to: user }] }, json);
      expect(reply.results).toHaveLength(52);
      expect(reply.results.slice(0, 50)).toEqual(ids.map((id) => ({ id, status: 'accepted' })));
      expect(reply.results[50]).toMatchObject({ id: 'broken', error: { code: 'invalid_request' } });
      expect(reply.results[51]).toEqual({ id: ids[0], status: 'duplicate' });
      await until(() => ids.every((id) => pc.count(id) === 1), 10_000, 'every batched message at the PC');
      const empty = await batch({ messages: [] }, json);
      expect(empty.error.code).toBe('invalid_request');
    } finally {
      pc.close();
    }
  });
});
