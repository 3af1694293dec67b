import type { NatsConnection } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import type { UserDirectory } from '../actors/directory.js';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import type { Bus } from '../bus/bus.js';
import { partitionOf, Subjects } from '../bus/subjects.js';
import { PartitionHost } from '../cluster/partition-host.js';
import type { Ingress } from '../store/types.js';

/** The gateways' resync answers come when the test says so (a loaded cluster can take up to RESYNC_WAIT_MS). */
function fakeNats() {
  const waiting: (() => void)[] = [];
  const nc = {
    publish: () => undefined,
    subscribe: () => {
      let end!: () => void;
      const ended = new Promise<void>((r) => (end = r));
      waiting.push(end);
      return {
        unsubscribe: end,
        async *[Symbol.asyncIterator]() {
          await ended;
        },
      };
    },
  };
  return { nc: nc as unknown as NatsConnection, answerAll: () => waiting.splice(0).forEach((end) => end()) };
}

/** Users spread over the 8 partitions of `setup` (which partition each is in comes from subjects.partitionOf). */
const users = Array.from({ length: 40 }, (_, i) => `user-${i}`);

function setup(opts: { ackTimeoutMs?: number; settled?: boolean; consumeFailures?: number } = {}) {
  const { nc, answerAll } = fakeNats();
  const calls: string[] = [];
  const subscribed: string[] = [];
  let consumeFailures = opts.consumeFailures ?? 0;
  const ingress = {
    consume: async (_h: unknown, p: number) => {
      calls.push(`consume ${p}`);
      if (consumeFailures-- > 0) throw new Error('TimeoutError: timeout'); // the consumer's create not answered
    },
    release: async (p: number) => void calls.push(`release ${p}`),
    pause: (p: number) => void calls.push(`pause ${p}`),
  } as unknown as Ingress;
  const bus = {
    subscribe: (subject: string) => {
      subscribed.push(subject);
      return { unsubscribe: () => void calls.push(`unsubscribe ${subject}`) };
    },
    serve: (subject: string) => {
      subscribed.push(subject);
      return { unsubscribe() {} };
    },
  } as unknown as Bus;
  const directory = {
    evict: () => void calls.push('evict'),
    drain: async () => void calls.push('drain'),
    settled: async (match: (u: string) => boolean, timeoutMs: number) => {
      calls.push(`settled ${users.filter(match).join(',')} within ${timeoutMs}`);
      await directoryGate.wait;
      return opts.settled ?? true;
    },
  } as unknown as UserDirectory;
  const subjects = new Subjects('sb', 8);
  const directoryGate = { wait: Promise.resolve() };
  const flushGate = { wait: Promise.resolve() };
  const reads = {
    flushReads: async (match: (u: string) => boolean) => {
      calls.push(`flush ${users.filter(match).join(',')}`);
      await flushGate.wait;
    },
    discardReads: (match: (u: string) => boolean) => void calls.push(`discard ${users.filter(match).join(',')}`),
  };
  const host = new PartitionHost({
    nc, bus, subjects, ingress, directory, liveGateways: () => 2, metrics: new Metrics({ defaultMetrics: false }),
    log: createLogger('silent'), drainTimeoutMs: 1000, ackTimeoutMs: opts.ackTimeoutMs, reads,
  });
  return { host, calls, subscribed, answerAll, subjects, flushGate, directoryGate };
}

describe('PartitionHost', () => {
  it('a partition lost while the gateways resend its sessions is never consumed', async () => {
    const { host, calls, answerAll } = setup();
    const acquiring = host.acquire(3, { revision: 7, epoch: 1 });
    host.lost(3); // the lease lapsed during the resync wait
    answerAll();
    await acquiring;
    expect(calls.filter((c) => /^(consume|release)/.test(c))).toEqual(['release 3']); // the loss's release only: no consumer started afterwards
    expect(host.size).toBe(0);
  });

  it('a partition kept is consumed once', async () => {
    const { host, calls, answerAll } = setup();
    const acquiring = host.acquire(1, { revision: 3, epoch: 1 });
    answerAll();
    await acquiring;
    expect(calls).toEqual(['consume 1']);
    expect(host.size).toBe(1);
  });

  it('an acquire whose consumer could not be set up rejects; called again (the LeaseKeeper retries) it keeps its subscriptions and consumes', async () => {
    const { host, calls, subscribed, answerAll } = setup({ consumeFailures: 1 });
    const fence = { revision: 3, epoch: 1 };
    const first = host.acquire(1, fence);
    answerAll();
    await expect(first).rejects.toThrow(/timeout/);
    expect(subscribed).toEqual(['sb.p.1', 'sb.q.1']);
    const again = host.acquire(1, fence);
    answerAll();
    await again;
    expect(calls).toEqual(['consume 1', 'consume 1']); // nothing unsubscribed in between
    expect(subscribed).toEqual(['sb.p.1', 'sb.q.1']); // the first try's subscriptions serve on, none doubled
    expect(host.size).toBe(1);
    host.lost(1);
    expect(calls).toContain('unsubscribe sb.p.1');
  });

  it('flushes the read states of a partition handed off once its work drained, and discards those of a partition lost', async () => {
    const { host, calls, answerAll } = setup();
    const acquiring = [host.acquire(2, { revision: 1, epoch: 1 }), host.acquire(5, { revision: 2, epoch: 1 })];
    answerAll();
    await Promise.all(acquiring);
    calls.length = 0;
    const inP = (p: number) => users.filter((u) => partitionOf(u, 8) === p).join(',');
    expect(inP(2)).not.toBe('');
    await host.release(2);
    expect(calls).toEqual(['release 2', 'unsubscribe sb.p.2', 'drain', `flush ${inP(2)}`, 'evict']);
    calls.length = 0;
    host.lost(5);
    expect(calls).toEqual(['release 5', 'unsubscribe sb.p.5', `discard ${inP(5)}`, 'evict']);
  });

  it('a partition lost and won back while its handoff flushed is not forgotten by that handoff', async () => {
    const { host, calls, answerAll, flushGate } = setup();
    const first = host.acquire(2, { revision: 1, epoch: 1 });
    answerAll();
    await first;
    let open!: () => void;
    flushGate.wait = new Promise<void>((r) => (open = r));
    const releasing = host.release(2);
    await new Promise((r) => setImmediate(r)); // it waits in the flush
    host.lost(2);
    const again = host.acquire(2, { revision: 5, epoch: 2 });
    answerAll();
    await again;
    calls.length = 0;
    open();
    await releasing;
    expect(calls).toEqual([]); // no evict of the users it owns again
    expect(host.size).toBe(1);
  });
  it('a partition lost and won back while its handoff waited for its deliveries keeps the new tenure\'s consumer and subscriptions', async () => {
    const { host, calls, answerAll, directoryGate } = setup({ ackTimeoutMs: 5000 });
    const first = host.acquire(2, { revision: 1, epoch: 1 });
    answerAll();
    await first;
    let open!: () => void;
    directoryGate.wait = new Promise<void>((r) => (open = r));
    const releasing = host.release(2);
    await new Promise((r) => setImmediate(r)); // it waits for the deliveries to finish
    host.lost(2);
    const again = host.acquire(2, { revision: 5, epoch: 2 });
    answerAll();
    await again;
    calls.length = 0;
    open();
    await releasing;
    expect(calls).toEqual([]); // neither the new consumer released, nor its subscription dropped, nor its users evicted
    expect(host.size).toBe(1);
  });

  it('a handoff pauses the ingress and lets the partition\'s deliveries finish while still subscribed, then releases it', async () => {
    for (const settled of [true, false]) {
      const { host, calls, answerAll } = setup({ ackTimeoutMs: 5000, settled });
      const acquiring = host.acquire(2, { revision: 1, epoch: 1 });
      answerAll();
      await acquiring;
      calls.length = 0;
      const inP = users.filter((u) => partitionOf(u, 8) === 2).join(',');
      await host.release(2);
      // The wait is bounded by the shutdown budget (drainTimeoutMs 1000) when that is shorter than the ack timeout;
      // what is still unfinished after it goes to the next owner, as before.
      expect(calls).toEqual(['pause 2', `settled ${inP} within 1000`, 'release 2', 'unsubscribe sb.p.2', 'drain', `flush ${inP}`, 'evict']);
    }
  });
});
