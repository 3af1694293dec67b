import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { jsAck, PullLoop } from '../cluster/jetstream-pull.js';
import { JetStreamPublisher } from '../cluster/jetstream-publisher.js';
import { natsForFile } from './support/nats-server.js';
import { until } from './support/ws-client.js';

const nats = natsForFile();

async function workQueue(name: string): Promise<void> {
  const jsm = await jetstreamManager(nats.nc);
  await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
  await jsm.consumers.add(name, { durable_name: 'c', ack_policy: AckPolicy.Explicit });
}

describe('PullLoop', () => {
  it('brings more than one request holds (a filled request is renewed at once) and acks empty the work queue', async () => {
    await workQueue('pull1');
    const pub = new JetStreamPublisher(nats.nc, 5000);
    await Promise.all(Array.from({ length: 250 }, (_, i) => pub.publish('pull1.x', new TextEncoder().encode(`m${i}`))));
    const got: Msg[] = [];
    const loop = new PullLoop(nats.nc, { stream: 'pull1', consumer: 'c', batch: 100, expiresMs: 5000 }, (m) => got.push(m));
    // Well before the 5 s expiry: the two filled requests were followed by new ones at once, not at the next tick.
    await until(() => got.length === 250, 2000, '250 messages');
    expect(new Set(got.map((m) => m.string())).size).toBe(250);
    for (const m of got) jsAck.ack(nats.nc, m.reply);
    const jsm = await jetstreamManager(nats.nc);
    await until(async () => (await jsm.streams.info('pull1')).state.messages === 0, 5000, 'acked messages removed');
    loop.stop();
    await pub.close();
  });

  it('keeps a request open at the nats.server while idle, and stops pulling when stopped', async () => {
    await workQueue('pull2');
    const got: Msg[] = [];
    const loop = new PullLoop(nats.nc, { stream: 'pull2', consumer: 'c', expiresMs: 200 }, (m) => got.push(m));
    const jsm = await jetstreamManager(nats.nc);
    // Several expiries later there is still a waiting request, and one sent before the last one expired.
    await until(async () => (await jsm.consumers.info('pull2', 'c')).num_waiting >= 1 && loop.open >= 1, 5000, 'a waiting pull');
    loop.stop();
    await until(async () => (await jsm.consumers.info('pull2', 'c')).num_waiting === 0, 5000, 'requests expired');
    await nats.nc.request('pull2.x', new TextEncoder().encode('late'));
    await nats.nc.flush();
    expect(got).toEqual([]);
  });

  it('says when its consumer is missing (pulls never answered), but not when another owner deleted it', async () => {
    await workQueue('pull3');
    let goneReported = 0;
    let neverReported = 0;
    const gone = new PullLoop(nats.nc, { stream: 'pull3', consumer: 'c', expiresMs: 400, onMissing: () => goneReported++ }, () => undefined);
    const jsm = await jetstreamManager(nats.nc);
    await until(async () => (await jsm.consumers.info('pull3', 'c')).num_waiting >= 1, 5000, 'a waiting pull');
    await jsm.consumers.delete('pull3', 'c'); // its open requests are answered 409 Consumer Deleted
    // From now on no pull of either loop is answered; only the loop whose consumer was never deleted reports it.
    const never = new PullLoop(nats.nc, { stream: 'pull3', consumer: 'never', expiresMs: 400, onMissing: () => neverReported++ }, () => undefined);
    await until(() => neverReported >= 3, 8000, 'a missing consumer reported');
    expect(goneReported).toBe(0);
    never.stop();
    gone.stop();
  });
});
