import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, NatsClient } from './support/cluster.js';
import { NatsServer } from './support/nats-server.js';
import { enc, uniqueUser, userView, viewUntil } from './support/scenario.js';
import { until } from './support/ws-client.js';

/**
 * Issue 9 in the cluster: two nodes on a real nats-server. One token, one (user, device) through the JetStream KV
 * registry, `switchboard.events.token_removed` on NATS, and the edge rules on `switchboard.send` (MessagePack and
 * JSON). Needs `npm run build`.
 */

const packr = new Packr({ useRecords: false });
let server: NatsServer;
let cluster: Cluster;
let chat: NatsClient;
const removedEvents: unknown[] = [];

beforeAll(async () => {
  server = await NatsServer.start();
  cluster = await Cluster.start({ natsUrls: [server.url], nodes: 2, partitions: 4 });
  chat = await NatsClient.connect([server.url]);
  chat.nc.subscribe('switchboard.events.token_removed', { callback: (err, m) => { if (!err) removedEvents.push(packr.unpack(m.data)); } });
  await chat.nc.flush();
}, 60_000);

afterAll(async () => {
  await chat?.close();
  await cluster?.dispose();
  await server?.dispose();
});

describe('push tokens in the cluster (issue 9)', () => {
  it('a token stored for bob on one node is taken from alice (registered on the other), with a token_removed event on NATS', async () => {
    const [a, b] = cluster.nodes;
    const alice = uniqueUser('alice');
    const bob = uniqueUser('bob');
    const token = 'fcm-token:APA91b-cluster-move';
    expect((await a.http('PUT', `/v1/users/${enc(alice)}/devices/phone`, { os: 'android', token })).status).toBe(200);
    expect((await userView(a, alice)).devices).toEqual([expect.objectContaining({ device: 'phone', hasToken: true })]);
    expect((await b.http('PUT', `/v1/users/${enc(bob)}/devices/phone`, { os: 'android', token })).status).toBe(200);
    await until(() => removedEvents.some((e) => (e as { user: string }).user === alice), 5000, 'token_removed event');
    expect(removedEvents.filter((e) => (e as { user: string }).user === alice)).toEqual([{ user: alice, device: 'phone', os: 'android', reason: 'moved' }]);
    await viewUntil(b, alice, (v) => v.devices.some((d) => d.device === 'phone' && !d.hasToken), 'alice lost the token');
    expect((await userView(a, bob)).devices).toEqual([expect.objectContaining({ device: 'phone', hasToken: true })]);
    expect(JSON.stringify(removedEvents)).not.toContain(token);
  });

  it('switchboard.send refuses reserved data keys and text that is not UTF-8, in MessagePack and JSON', async () => {
    expect(await chat.send({ id: 'x1', to: 'bob', data: { from: 'alice' } })).toMatchObject({ error: { code: 'invalid_field', message: expect.stringContaining('data.from') } });
    expect(await chat.send({ id: 'x2', to: 'bob', data: { 'google.c.a.e': '1' } }, { json: true })).toMatchObject({ error: { code: 'invalid_field' } });
    const mp = Buffer.from(packr.pack({ id: 'x3', to: 'bob', text: 'caf_' }));
    mp[mp.lastIndexOf('_'.charCodeAt(0))] = 0xe9; // Latin-1 "é" inside a MessagePack str
    expect(await chat.sendRaw(mp)).toMatchObject({ error: { code: 'invalid_field', message: expect.stringContaining('UTF-8') } });
    const json = Buffer.from(JSON.stringify({ id: 'x4', to: 'bob', text: 'caf_' }));
    json[json.lastIndexOf('_'.charCodeAt(0))] = 0xe9;
    expect(await chat.sendRaw(json, { json: true })).toMatchObject({ error: { code: 'invalid_field' } });
    expect(await chat.send({ id: 'x5', to: 'bob', text: 'ok', urgent: true })).toEqual({ id: 'x5', status: 'accepted' });
  });

  it('switchboard.send answers payload_too_large for a message that could never be pushed, over our own limits too', async () => {
    expect(await chat.send({ id: 'y1', to: 'bob', title: 'x'.repeat(4096) })).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await chat.send({ id: 'y2', to: 'bob', title: 'x'.repeat(70_000) }, { json: true })).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await chat.send({ id: 'y3', to: 'bob', title: 'x'.repeat(1025) })).toMatchObject({ error: { code: 'invalid_request' } });
  });
});
