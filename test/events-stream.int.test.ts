import { request, type IncomingMessage } from 'node:http';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Subjects } from '../bus/subjects.js';
import { natsEventSource } from '../runtime/token-removals.js';
import type { TokenRemovedEvent } from '../protocol/index.js';
import { NodeProcess } from './support/node-process.js';
import { natsForFile } from './support/nats-server.js';
import { uniqueUser } from './support/scenario.js';
import { until } from './support/ws-client.js';

/** An open `GET /v1/events`: the events read so far, by name, and the raw text (to look for what must not be there). */
function openEvents(node: NodeProcess, key = node.apiKey): Promise<{ status: number; events: { event: string; data: any }[]; text: () => string; close: () => void; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = request(`${node.url}/v1/events`, { headers: { authorization: `Bearer ${key}` } }, (res) => {
      const events: { event: string; data: any }[] = [];
      let raw = '';
      let pending = '';
      res.on('data', (c: Buffer) => {
        raw += c.toString();
        pending += c.toString();
        let end: number;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) });
        }
      });
      resolve({ status: res.statusCode ?? 0, events, text: () => raw, close: () => req.destroy(), res });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Section 3: "Every token that Switchboard removes ... is published ... so chat servers can clean up too." An embedded
 * node has no NATS to publish on: `GET /v1/events` streams the same events (server-sent events) to an HTTP chat server.
 */
describe('GET /v1/events (embedded)', () => {
  let node: NodeProcess;
  beforeAll(async () => { node = await NodeProcess.start(); });
  afterAll(async () => { await node?.stop(); await node?.removeData(); });

  it('streams token_removed events, moved and deleted, with no token in them; needs the key', async () => {
    expect((await openEvents(node, 'wrong-key')).status).toBe(401);
    const stream = await openEvents(node);
    expect(stream.status).toBe(200);
    expect(stream.res.headers['content-type']).toMatch(/^text\/event-stream/);
    const alice = uniqueUser('ev-a');
    const bob = uniqueUser('ev-b');
    const token = `fcm-token-${alice}`;
    expect((await node.http('PUT', `/v1/users/${alice}/devices/pixel`, { os: 'android', token })).status).toBe(200);
    // The same token stored for another user's device: it moves, and alice's device loses it.
    expect((await node.http('PUT', `/v1/users/${bob}/devices/tablet`, { os: 'android', token })).status).toBe(200);
    expect((await node.http('DELETE', `/v1/users/${bob}/devices/tablet`)).status).toBe(204);
    await until(() => stream.events.length === 2, 5000, 'two events');
    expect(stream.events).toEqual([
      { event: 'token_removed', data: { user: alice, device: 'pixel', os: 'android', reason: 'moved' } },
      { event: 'token_removed', data: { user: bob, device: 'tablet', os: 'android', reason: 'deleted' } },
    ]);
    expect(stream.text()).not.toContain(token);
    stream.close();
  });

  it('a node stopping ends its streams, so clients reconnect elsewhere', async () => {
    const other = await NodeProcess.start();
    const stream = await openEvents(other);
    const ended = new Promise<void>((resolve) => stream.res.on('close', () => resolve()));
    expect(await other.stop()).toEqual({ code: 0, signal: null });
    await ended;
    await other.removeData();
  });
});

describe('the cluster event source (NATS)', () => {
  const nats = natsForFile();

  it('reads every node\'s MessagePack token_removed events from NATS while subscribed, and nothing after', async () => {
    const subjects = new Subjects('sbev', 4);
    const got: TokenRemovedEvent[] = [];
    const silent = { warn: () => undefined } as never;
    const unsubscribe = natsEventSource(nats.nc, subjects, silent).subscribe((e) => got.push(e));
    await nats.nc.flush();
    const packr = new Packr({ useRecords: false });
    const event: TokenRemovedEvent = { user: 'u1', device: 'd1', os: 'ios', reason: 'dead' };
    nats.nc.publish(subjects.tokenRemovedEvents, packr.pack(event));
    nats.nc.publish(subjects.tokenRemovedEvents, new Uint8Array([0xc1])); // not MessagePack: skipped, the stream goes on
    nats.nc.publish(subjects.tokenRemovedEvents, packr.pack({ ...event, user: 'u2' }));
    await until(() => got.length === 2, 5000, 'two events');
    expect(got.map((e) => e.user)).toEqual(['u1', 'u2']);
    unsubscribe();
    nats.nc.publish(subjects.tokenRemovedEvents, packr.pack({ ...event, user: 'u3' }));
    await nats.nc.flush();
    expect(got.map((e) => e.user)).toEqual(['u1', 'u2']);
  });
});
