import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { JetStreamHeldStore } from '../cluster/jetstream-held-store.js';
import { JetStreamIngress, streamSequenceOf } from '../cluster/jetstream-ingress.js';
import { partitionOf } from '../bus/subjects.js';
import { acceptOrderFor, type ChatMessage } from '../protocol/index.js';
import { NatsServer, natsForFile } from './support/nats-server.js';
import { until } from './support/ws-client.js';
import { describeIngressContract } from './contracts/ingress.contract.js';

const nats = natsForFile();

const msg = (id: string, to: string): ChatMessage => ({ id, to, text: `text of ${id}`, acceptedAt: Date.now() });

/** Consumes partition `p`, marking each message done at once; the ids arrive in the returned array. */
async function consumeDone(ingress: JetStreamIngress, p: number): Promise<string[]> {
  const got: string[] = [];
  await ingress.consume((m) => {
    got.push(m.id);
    ingress.done(m.id);
  }, p);
  return got;
}

/** Runs `fn` with a nats-server of its own (paused by some tests) and a connection to it, both gone afterwards. */
async function withOwnServer(fn: (own: NatsServer, c: NatsConnection) => Promise<void>): Promise<void> {
  const own = await NatsServer.start();
  const c = await connect({ servers: own.url });
  try {
    await fn(own, c);
  } finally {
    own.resume();
    await c.close();
    await own.dispose();
  }
}

describe('streamSequenceOf: the stream sequence of a JetStream ack subject', () => {
  it('reads both forms of the subject, and nothing else', () => {
    expect(streamSequenceOf('$JS.ACK.sb_ingress.p3.1.42.7.1733100000000000000.0')).toBe(42);
    expect(streamSequenceOf('$JS.ACK.hub.acchash.sb_ingress.p3.2.42.8.1733100000000000000.0.rnd')).toBe(42);
    expect(streamSequenceOf('$JS.ACK.hub.acchash.sb_ingress.p3.2.42.8.1733100000000000000.0')).toBe(42);
    for (const bad of [undefined, '_INBOX.x.y', '$JS.ACK.s.c.1.x.7.1.0', '$JS.ACK.s.c.1.0.7.1.0', '$JS.ACK.too.short']) expect(streamSequenceOf(bad)).toBeUndefined();
  });
});

describe('JetStream ingress', () => {
  it('stamps each consumed message with its ingress sequence: accept order whatever acceptedAt says', async () => {
    const ingress = await JetStreamIngress.open(nats.nc, { prefix: 'sb8', partitions: 2 });
    const now = Date.now();
    // Gateways' clocks apart: each later accept carries an earlier acceptedAt.
    for (let i = 0; i < 5; i++) await ingress.accept({ id: `q${i}`, to: 'frank', acceptedAt: now - i * 10 });
    const got: ChatMessage[] = [];
    await ingress.consume((m) => {
      got.push(m);
      ingress.done(m.id);
    }, partitionOf('frank', 2));
    await until(() => got.length === 5);
    expect(got.map((m) => m.id)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
    const seqs = got.map((m) => m.acceptSeq!);
    expect(seqs.every((s, i) => Number.isSafeInteger(s) && (i === 0 || s > seqs[i - 1]))).toBe(true);
    expect([...got].reverse().sort(acceptOrderFor(got)).map((m) => m.id)).toEqual(['q0', 'q1', 'q2', 'q3', 'q4']);
    await ingress.close();
  });

  it('stores a message once per id and hands each partition its own messages in order', async () => {
    const ingress = await JetStreamIngress.open(nats.nc, { prefix: 'sb1', partitions: 4 });
    expect(await ingress.accept(msg('a1', 'alice'))).toBe('accepted');
    expect(await ingress.accept(msg('a1', 'alice'))).toBe('duplicate');
    for (let i = 2; i <= 50; i++) await ingress.accept(msg(`a${i}`, 'alice'));
    const p = partitionOf('alice', 4);
    const got = await consumeDone(ingress, p);
    await until(() => got.length === 50);
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `a${i + 1}`));
    await ingress.close();
  });

  it('hands an unacked message to the next owner of the partition at once, not after ack_wait', async () => {
    const first = await JetStreamIngress.open(nats.nc, { prefix: 'sb2', partitions: 2, ackWaitMs: 30_000 });
    await first.accept(msg('m1', 'bob'));
    const p = partitionOf('bob', 2);
    const seen: string[] = [];
    await first.consume((m) => seen.push(m.id), p); // never done: a crashed owner
    await until(() => seen.length === 1);
    await first.release(p);

    const nc2 = await connect({ servers: nats.server.url });
    const second = await JetStreamIngress.open(nc2, { prefix: 'sb2', partitions: 2, ackWaitMs: 30_000 });
    const again: string[] = [];
    const t0 = Date.now();
    await second.consume((m) => {
      again.push(m.id);
      second.done(m.id);
    }, p);
    await until(() => again.length === 1, 5000);
    expect(again).toEqual(['m1']);
    expect(Date.now() - t0).toBeLessThan(5000); // a consumer per tenure: no wait for the 30 s ack_wait
    await second.close();
    await nc2.close();
  });

  it('paused, a partition hands out nothing new, and a message handed out before and done after is acked: the next owner does not get it', async () => {
    const first = await JetStreamIngress.open(nats.nc, { prefix: 'sb2p', partitions: 2, ackWaitMs: 30_000 });
    await first.accept(msg('m1', 'bob'));
    const p = partitionOf('bob', 2);
    const seen: string[] = [];
    await first.consume((m) => seen.push(m.id), p);
    await until(() => seen.length === 1);
    first.pause(p); // a handoff begins: m1's delivery is still waiting for its client's ack
    await first.accept(msg('m2', 'bob'));
    first.done('m1'); // the ack came
    await nats.nc.flush();
    await first.release(p);
    expect(seen).toEqual(['m1']); // m2 was not handed out once paused

    const nc2 = await connect({ servers: nats.server.url });
    const second = await JetStreamIngress.open(nc2, { prefix: 'sb2p', partitions: 2, ackWaitMs: 30_000 });
    const next: string[] = [];
    await second.consume((m) => {
      next.push(m.id);
      second.done(m.id);
    }, p);
    await until(() => next.includes('m2'), 5000); // an unacked m1 would come first: the new consumer starts at the ack floor
    expect(next).toEqual(['m2']);
    await second.close();
    await nc2.close();
    await first.close();
  });

  it('a partition released while its consumer is being set up is not consumed: no loop left pulling for another owner', async () => {
    const ingress = await JetStreamIngress.open(nats.nc, { prefix: 'sb4', partitions: 2 });
    const got: string[] = [];
    const consuming = ingress.consume((m) => got.push(m.id), 0);
    await ingress.release(0); // the lease was lost while the consumer was created
    await consuming;
    const jsm = await jetstreamManager(nats.nc);
    const to = ['u0', 'u1', 'u2', 'u3', 'u4'].find((u) => partitionOf(u, 2) === 0)!;
    await ingress.accept(msg('z1', to));
    // Nobody asked for the message: it stays waiting for the next owner, and no pull request is open for it.
    await until(async () => (await jsm.consumers.info(ingress.stream, 'p0')).num_pending === 1, 5000, 'message waiting');
    expect((await jsm.consumers.info(ingress.stream, 'p0')).num_waiting).toBe(0);
    expect(got).toEqual([]);
    await ingress.close();
  });

  it('refuses unsent with a clear temporary 503 while the connection is down, and accepts again after', async () => {
    const own = await NatsServer.start();
    const c = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const ingress = await JetStreamIngress.open(c, { prefix: 'sb3', partitions: 2, publishTimeoutMs: 500 });
    const down = (async () => { for await (const s of c.status()) if (s.type === 'disconnect') return; })();
    await own.stop();
    await down;
    await expect(ingress.accept(msg('x1', 'carol'))).rejects.toMatchObject({ code: 'unavailable', status: 503, temporary: true, message: expect.stringContaining('not sent') });
    await own.restart();
    await until(async () => (await ingress.accept(msg('x2', 'carol')).catch(() => 'no')) === 'accepted', 10_000, 'accept after restart');
    // Section 3: the 503'd x1 was not accepted: it was never stored, so sending it again is a new accept.
    expect(await ingress.accept(msg('x1', 'carol'))).toBe('accepted');
    await c.close();
    await own.dispose();
  });

  it('publishes again what JetStream left unanswered: accepted once it answers, never 503, stored once', () =>
    withOwnServer(async (own, c) => {
      const ingress = await JetStreamIngress.open(c, { prefix: 'sb6', partitions: 2, publishTimeoutMs: 300, acceptDeadlineMs: 20_000 });
      const got = await consumeDone(ingress, partitionOf('dave', 2));
      await own.pause(); // a stalled JetStream: the publish waits in its socket, unanswered
      const accepting = ingress.accept(msg('s1', 'dave'));
      await until(() => ingress.unansweredPublishes >= 2, 10_000, 'two publishes unanswered');
      own.resume();
      expect(await accepting).toBe('accepted');
      expect(await ingress.accept(msg('s1', 'dave'))).toBe('duplicate');
      await ingress.accept(msg('s1-marker', 'dave'));
      await until(() => got.includes('s1-marker'), 10_000, 'marker consumed');
      expect(got.filter((id) => id === 's1')).toHaveLength(1);
      await ingress.close();
    }));

  it('stopRetrying (a graceful stop): an unanswered accept answers outcome_unknown after its publish timeout, not at the deadline', () =>
    withOwnServer(async (own, c) => {
      const ingress = await JetStreamIngress.open(c, { prefix: 'sb9', partitions: 2, publishTimeoutMs: 300, acceptDeadlineMs: 30_000 });
      await own.pause();
      const t0 = Date.now();
      const accepting = ingress.accept(msg('z1', 'gina'));
      ingress.stopRetrying();
      await expect(accepting).rejects.toMatchObject({ code: 'outcome_unknown' });
      expect(Date.now() - t0).toBeLessThan(10_000); // one publish timeout, not the 30 s deadline
      expect(ingress.unansweredPublishes).toBe(1);
    }));

  it('answers outcome_unknown (504, not 503) when no answer came by the deadline: the message may be stored, and a resend finds out', () =>
    withOwnServer(async (own, c) => {
      const ingress = await JetStreamIngress.open(c, { prefix: 'sb7', partitions: 2, publishTimeoutMs: 200, acceptDeadlineMs: 700 });
      const got = await consumeDone(ingress, partitionOf('erin', 2));
      await own.pause();
      await expect(ingress.accept(msg('u1', 'erin'))).rejects.toMatchObject({ code: 'outcome_unknown', status: 504, temporary: true });
      own.resume();
      // It was stored after all (its copies waited in the socket): a resend with the same id is a duplicate, and it is
      // consumed once. Had the answer been 503, that delivery would break section 3.
      expect(await ingress.accept(msg('u1', 'erin'))).toBe('duplicate');
      await until(() => got.includes('u1'), 10_000, 'consumed');
      await ingress.close();
    }));

  it('adds its memory-stored consumer again after nats-server restarts: what is accepted after is consumed', async () => {
    const own = await NatsServer.start();
    const c = await connect({ servers: own.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    try {
      const ingress = await JetStreamIngress.open(c, { prefix: 'sb5', partitions: 2 });
      const p = partitionOf('erin', 2);
      const got = await consumeDone(ingress, p);
      const jsm = await jetstreamManager(c);
      expect((await jsm.consumers.info(ingress.stream, `p${p}`)).config.mem_storage).toBe(true);
      await ingress.accept(msg('before', 'erin'));
      await until(() => got.includes('before'), 5000, 'consumed before the restart');
      await own.restart(); // the stream is on file, the consumer was in memory: gone
      await until(async () => (await ingress.accept(msg('after', 'erin')).catch(() => 'no')) === 'accepted', 10_000, 'accept after restart');
      await until(() => got.includes('after'), 10_000, 'consumed after the restart');
      expect(got.filter((id) => id === 'before')).toHaveLength(1); // acked before the restart: not redelivered
      await ingress.close();
    } finally {
      await c.close();
      await own.dispose();
    }
  });
});

let contractRun = 0;
describeIngressContract('JetStream (real nats-server)', async () => {
  const prefix = `sbc${++contractRun}`;
  const open = (): Promise<JetStreamIngress> => JetStreamIngress.open(nats.nc, { prefix, partitions: 4 });
  const ingress = await open();
  const opened: JetStreamIngress[] = [ingress];
  return {
    ingress,
    reopen: async () => {
      const again = await open();
      opened.push(again);
      return again;
    },
    cleanup: async () => {
      for (const i of opened) await i.close();
    },
  };
});

describe('opening the JetStream stores when JetStream refuses their stream', () => {
  /** Subscriptions open on `nc` (nats.js keeps no public count of them). */
  const subscriptions = (nc: NatsConnection) => (nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size();

  it('a failed open (start-up retries it) leaves no subscription behind, for the ingress and the held store alike', async () => {
    const jsm = await jetstreamManager(nats.nc);
    // Streams that already take the subjects: the stores cannot make their own.
    await jsm.streams.add({ name: 'blocker_in', subjects: ['blocked.in.*'] });
    await jsm.streams.add({ name: 'blocker_held', subjects: ['blocked.held.>'] });
    const reads = await new Kvm(nats.nc).create('blocked_reads', { history: 1 });
    const before = subscriptions(nats.nc);
    for (let attempt = 0; attempt < 3; attempt++) {
      await expect(JetStreamIngress.open(nats.nc, { prefix: 'blocked', partitions: 4 })).rejects.toThrow(/stream not found|overlap/); // the add overlaps, the update finds no such stream
      await expect(JetStreamHeldStore.open(nats.nc, reads, { prefix: 'blocked', partitions: 4, holdMax: 10 })).rejects.toThrow(/stream not found|overlap/);
    }
    expect(subscriptions(nats.nc)).toBe(before);
    const ingress = await JetStreamIngress.open(nats.nc, { prefix: 'open', partitions: 4 }); // one that opens has its publisher
    expect(subscriptions(nats.nc)).toBe(before + 1);
    await ingress.close();
  });
});

