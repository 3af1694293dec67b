import { jetstreamManager, DiscardPolicy, StorageType } from '@nats-io/jetstream';
import { beforeAll, describe, expect, it } from 'vitest';
import { JetStreamPublisher, msgIdHeader } from '../cluster/jetstream-publisher.js';
import { natsForFile } from './support/nats-server.js';

const nats = natsForFile();
beforeAll(async () => {
  const jsm = await jetstreamManager(nats.nc);
  await jsm.streams.add({ name: 'pubtest', subjects: ['pubtest.>'], storage: StorageType.File, duplicate_window: 60_000_000_000 });
  await jsm.streams.add({ name: 'pubfull', subjects: ['pubfull.>'], storage: StorageType.File, max_msgs: 1, discard: DiscardPolicy.New });
});

const bytes = (s: string) => new TextEncoder().encode(s);

describe('JetStreamPublisher', () => {
  it('resolves each publish with its own PubAck, in the stream order, and tells duplicates by Nats-Msg-Id', async () => {
    const pub = new JetStreamPublisher(nats.nc, 5000);
    const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => pub.publish('pubtest.a', bytes(`m${i}`), `id${i}`)));
    expect(acks.map((a) => a.stream)).toEqual(Array(50).fill('pubtest'));
    const seqs = acks.map((a) => a.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(50);
    expect(acks.every((a) => !a.duplicate)).toBe(true);
    const again = await pub.publish('pubtest.a', bytes('m3 again'), 'id3');
    expect(again).toEqual({ stream: 'pubtest', seq: acks[3].seq, duplicate: true });
    const jsm = await jetstreamManager(nats.nc);
    expect((await jsm.streams.getMessage('pubtest', { seq: acks[7].seq }))?.string()).toBe('m7');
    await pub.close();
  });

  it('sends every message id as a Nats-Msg-Id of its own: ids that differ in edge whitespace or line breaks are not duplicates', async () => {
    const pub = new JetStreamPublisher(nats.nc, 5000);
    const ids = ['w', 'w ', ' w', 'w\n', 'w\r\nx', '~w', 'w\t', 'w\u00a0', 'w\u200d'];
    const acks = await Promise.all(ids.map((id, i) => pub.publish('pubtest.ws', bytes(`m${i}`), id)));
    expect(acks.map((a) => a.duplicate)).toEqual(ids.map(() => false));
    expect(new Set(acks.map((a) => a.seq)).size).toBe(ids.length);
    // Each is still its own duplicate.
    for (const [i, id] of ids.entries()) expect(await pub.publish('pubtest.ws', bytes('again'), id)).toEqual({ stream: 'pubtest', seq: acks[i].seq, duplicate: true });
    await pub.close();
  });

  it('msgIdHeader: plain ids as they are, the rest as ~ and base64url, never two ids on one value', () => {
    for (const plain of ['m1', 'id with inner spaces', 'a~b', 'a~', '!', '}']) expect(msgIdHeader(plain)).toBe(plain);
    // Anything but printable ASCII goes encoded, the same on every node whatever its Unicode tables.
    const tricky = ['a', 'a ', ' a', '\ta', 'a\n', 'a\r', '~a', '~', `~${Buffer.from('a ').toString('base64url')}`, 'a\u200b', 'a\u3000', '\u0000', 'a\u00a0', 'ünïcödé', 'order-\u{1FAE9}'];
    expect(msgIdHeader('order-\u{1FAE9}')).toBe(`~${Buffer.from('order-\u{1FAE9}').toString('base64url')}`);
    const values = tricky.map(msgIdHeader);
    expect(new Set(values).size).toBe(tricky.length);
    for (const v of values) {
      expect(v).toBe(v.trim()); // nats.js trims header values
      expect(v).not.toMatch(/[\r\n]/); // and refuses these
    }
    expect(Buffer.from(msgIdHeader('a ').slice(1), 'base64url').toString()).toBe('a ');
  });

  it('rejects what JetStream refuses (with its error code), and a subject no stream takes', async () => {
    const pub = new JetStreamPublisher(nats.nc, 5000);
    await pub.publish('pubfull.x', bytes('1'));
    await expect(pub.publish('pubfull.x', bytes('2'))).rejects.toMatchObject({ name: 'JetStreamPublishError', code: 10077 });
    await expect(pub.publish('nostream.x', bytes('3'))).rejects.toThrow(/no responders/);
    expect(pub.inFlight).toBe(0);
    await pub.close();
  });

  it('fails a publish nobody answers after the timeout, and close() waits for those in flight', async () => {
    const silent = nats.nc.subscribe('pubsilent.x'); // takes the message, never answers
    const pub = new JetStreamPublisher(nats.nc, 150);
    const t0 = Date.now();
    const lost = pub.publish('pubsilent.x', bytes('?'));
    const closed = pub.close();
    await expect(lost).rejects.toThrow(/no PubAck within 150 ms/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    await closed;
    await expect(pub.publish('pubtest.b', bytes('late'))).rejects.toThrow(/closed/);
    silent.unsubscribe();
  });
});
