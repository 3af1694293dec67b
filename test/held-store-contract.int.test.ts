import { Kvm, type KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamHeldStore, READS_HISTORY } from '../cluster/jetstream-held-store.js';
import { describeHeldStoreContract } from './contracts/held-store.contract.js';
import { emptyReadState, fromRecord, markDelivered, markRead, toRecord, unmarkDelivered } from '../store/read-state.js';
import type { ReadChange, ReadStateRecord } from '../store/types.js';
import { NatsServer } from './support/nats-server.js';
import { until } from './support/ws-client.js';

const packr = new Packr({ useRecords: false });
const rs = (unread: string[], read: string[] = []) => fromRecord({ unread, read });
/** The user's keys in the reads bucket (as cluster/jetstream-held-store.ts names them): the whole state, the changes. */
const readsKey = (user: string) => `u.${Buffer.from(user, 'utf8').toString('base64url')}`;
const changesKey = (user: string) => `c.${Buffer.from(user, 'utf8').toString('base64url')}`;

let server: NatsServer;
beforeAll(async () => {
  server = await NatsServer.start();
});
afterAll(async () => {
  await server?.dispose();
});

let n = 0;
const openStore = async (nc: NatsConnection, prefix: string, holdMax = 1000, readPutDelayMs?: number) =>
  JetStreamHeldStore.open(nc, await new Kvm(nc).create(`${prefix}_reads`, { history: 1 }), { prefix, partitions: 4, holdMax, readPutDelayMs });

describeHeldStoreContract('JetStreamHeldStore on a real nats-server', async () => {
  const conns: NatsConnection[] = [await connect({ servers: server.url })];
  const prefix = `held${++n}`;
  return {
    store: await openStore(conns[0], prefix),
    // Another connection, as the next owner after a failover would open it.
    reopen: async () => {
      const nc = await connect({ servers: server.url });
      conns.push(nc);
      return openStore(nc, prefix);
    },
    cleanup: async () => {
      for (const c of conns) await c.close();
    },
  };
});

/** Runs `fn` on a fresh connection to the test's server, closed whatever `fn` does. */
async function withNats(fn: (nc: NatsConnection) => Promise<void>): Promise<void> {
  const nc = await connect({ servers: server.url });
  try {
    await fn(nc);
  } finally {
    await nc.close();
  }
}
const heldAt = (now: number, id: string, at: number) => ({ msg: { id, to: 'u@x', acceptedAt: now + at }, expiresAt: now + 60_000 });
const idsOf = (held: { msg: { id: string } }[]) => held.map((h) => h.msg.id);

describe('JetStreamHeldStore', () => {
  it('lists in accept order by the ingress sequence (acceptSeq), not by acceptedAt from gateways whose clocks differ (section 4)', () =>
    withNats(async (nc) => {
      const store = await openStore(nc, 'heldseq');
      const now = Date.now();
      // Accepted in the order s1..s4 (ingress sequences 10..13), stamped by gateways 50 ms apart: acceptedAt disagrees.
      const stamped = [['s3', 12, 0], ['s1', 10, 30], ['s4', 13, 10], ['s2', 11, 60]] as const;
      for (const [id, seq, at] of stamped) await store.hold('u@x', { msg: { id, to: 'u@x', acceptedAt: now + at, acceptSeq: seq }, expiresAt: now + 60_000 });
      expect(idsOf(await store.list('u@x', now))).toEqual(['s1', 's2', 's3', 's4']);
      expect(idsOf(await (await openStore(nc, 'heldseq')).list('u@x', now))).toEqual(['s1', 's2', 's3', 's4']); // as stored
      // One held before acceptSeq was stamped: the whole list goes by acceptedAt (one key: a total order).
      await store.hold('u@x', { msg: { id: 's0', to: 'u@x', acceptedAt: now + 20 }, expiresAt: now + 60_000 });
      expect(idsOf(await store.list('u@x', now))).toEqual(['s3', 's4', 's0', 's1', 's2']);
    }));

  it('max_msgs_per_subject = SWITCHBOARD_HOLD_MAX: JetStream itself drops a user\'s oldest first', () =>
    withNats(async (nc) => {
      const store = await openStore(nc, 'heldcap', 3);
      const now = Date.now();
      for (let i = 1; i <= 5; i++) await store.hold('u@x', heldAt(now, `m${i}`, i));
      const again = await openStore(nc, 'heldcap', 3);
      expect(idsOf(await again.list('u@x', now))).toEqual(['m3', 'm4', 'm5']);
    }));

  it('holds issued together for a user not read yet reach the stream in the order they came, so the cap drops the oldest', () =>
    withNats(async (nc) => {
      const store = await openStore(nc, 'heldorder', 3);
      // Each read of the user's index takes less time than the one before it: reads of their own would finish in
      // reverse order, and their holds publish in reverse (m5 first, so the cap kept m1-m3).
      const internals = store as unknown as { load: (user: string) => Promise<unknown> };
      const load = internals.load.bind(store);
      let reads = 0;
      internals.load = async (user) => {
        const delay = Math.max(0, 100 - 20 * reads++);
        await new Promise((r) => setTimeout(r, delay));
        return load(user);
      };
      const now = Date.now();
      await Promise.all([1, 2, 3, 4, 5].map((i) => store.hold('u@x', heldAt(now, `m${i}`, i))));
      const again = await openStore(nc, 'heldorder', 3);
      expect(idsOf(await again.list('u@x', now))).toEqual(['m3', 'm4', 'm5']);
    }));

  it('a hold stored after a list() re-read the user is in the index that list left: a drop then removes it', () =>
    withNats(async (nc) => {
      const store = await openStore(nc, 'holdrace');
      const now = Date.now();
      await store.hold('u@x', heldAt(now, 'm0', 0)); // the user's index is cached
      // The publish of the next hold waits until a list() has read the stream (without it) and replaced the index.
      const publisher = (store as unknown as { publisher: { publish: (...a: unknown[]) => Promise<unknown> } }).publisher;
      const publish = publisher.publish.bind(publisher);
      let listed!: () => void;
      const afterList = new Promise<void>((r) => (listed = r));
      publisher.publish = async (...a: unknown[]) => {
        await afterList;
        return publish(...a);
      };
      const holding = store.hold('u@x', heldAt(now, 'm1', 1));
      expect(idsOf(await store.list('u@x', now))).toEqual(['m0']);
      listed();
      await holding;
      publisher.publish = publish;
      await store.drop('u@x', ['m1']);
      expect(idsOf(await store.list('u@x', now))).toEqual(['m0']);
    }));

  it('a hold confirmed while a list() was reading the stream stays in the index that list leaves: a drop removes it', () =>
    withNats(async (nc) => {
      const store = await openStore(nc, 'loadrace');
      const now = Date.now();
      await store.hold('u@x', heldAt(now, 'm0', 0));
      // The list's fetch waits (a slow JetStream) after it read the stream's state, while the next hold is stored.
      const consumers = (store as unknown as { js: { consumers: { get: (...a: unknown[]) => Promise<unknown> } } }).js.consumers;
      const get = consumers.get.bind(consumers);
      let stored!: () => void;
      const afterHold = new Promise<void>((r) => (stored = r));
      let reading!: () => void;
      const readStarted = new Promise<void>((r) => (reading = r));
      consumers.get = async (...a: unknown[]) => {
        reading();
        await afterHold;
        return get(...a);
      };
      const listing = store.list('u@x', now);
      await readStarted;
      await store.hold('u@x', heldAt(now, 'm1', 1));
      stored();
      expect(idsOf(await listing)).toEqual(['m0']);
      consumers.get = get;
      expect(await store.drop('u@x', ['m1'])).toBe(1);
      expect(idsOf(await store.list('u@x', now))).toEqual(['m0']);
    }));

  it('coalesces unread marks: they wait to be put together, and close puts what waits', async () => {
    const nc = await connect({ servers: server.url });
    const other = await connect({ servers: server.url });
    try {
      const store = await openStore(nc, 'coalesce');
      const state = emptyReadState();
      for (let i = 0; i < 200; i++) {
        markDelivered(state, `m${i}`);
        await store.saveReads('u@x', state, { delivered: `m${i}` }, false); // resolves at once: no put awaited
      }
      expect(store.readsPuts).toBe(0); // the 200 marks wait out READ_PUT_DELAY_MS as one dirty state
      // Until the writes are done, this node answers from its latest state, not the bucket's older one.
      expect((await store.reads('u@x')).unread.size).toBe(200);
      await store.close(); // puts what waits, then waits for the writes in flight
      expect(store.readsPuts).toBe(1);
      const again = await openStore(other, 'coalesce');
      expect(toRecord(await again.reads('u@x'))).toEqual({ unread: [...state.unread], read: [] });
    } finally {
      await nc.close();
      await other.close();
    }
  });

  it('a durable save behind a put in flight resolves only once a put holding its own state is stored', async () => {
    const nc = await connect({ servers: server.url });
    const other = await connect({ servers: server.url });
    try {
      const store = await openStore(nc, 'durable', 1000, 0); // no delay: the first mark's put is in flight at once
      const kv = await new Kvm(other).open('durable_reads');
      const state = emptyReadState();
      markDelivered(state, 'a');
      void store.saveReads('u@x', state, { delivered: 'a' }, false); // put 1 in flight: unread [a]
      markDelivered(state, 'b');
      void store.saveReads('u@x', state, { delivered: 'b' }, false);
      markRead(state, ['a']);
      await store.saveReads('u@x', state, { read: ['a'] }, true); // must not resolve on put 1's answer
      const whole = await kv.get(readsKey('u@x'));
      const changes = await kv.get(changesKey('u@x'));
      // Put 2 carries what changed since put 1 (the user was busy): the mark of b and the read, made on put 1's state.
      expect(packr.unpack(whole!.value)).toEqual({ unread: ['a'], read: [] });
      expect(packr.unpack(changes!.value)).toEqual({ base: whole!.revision, changes: [{ delivered: 'b' }, { read: ['a'] }] });
      expect(store.readsPuts).toBe(2);
      expect(toRecord(await (await openStore(other, 'durable')).reads('u@x'))).toEqual({ unread: ['b'], read: ['a'] });
      await store.close();
    } finally {
      await nc.close();
      await other.close();
    }
  });

  describe('read states as a whole state and the changes after it (issue 13)', () => {
    /** The revisions of a key in the reads bucket, oldest first, decoded ('cleared' for an empty value). */
    const revisions = async (kv: KV, key: string) => {
      const out: unknown[] = [];
      for await (const e of await kv.history({ key })) out.push(e.operation !== 'PUT' ? e.operation : e.value.length === 0 ? 'cleared' : packr.unpack(e.value));
      return out;
    };

    it('a bucket made with history 1 (an earlier version) is raised to READS_HISTORY at open, with rollups allowed', () =>
      withNats(async (nc) => {
        const kv = await new Kvm(nc).create('oldbucket_reads', { history: 1 });
        await JetStreamHeldStore.open(nc, kv, { prefix: 'oldbucket', partitions: 4, holdMax: 10 });
        const status = await (await new Kvm(nc).open('oldbucket_reads')).status();
        expect(status.history).toBe(READS_HISTORY);
        expect(status.streamInfo.config.allow_rollup_hdrs).toBe(true);
      }));

    it('a key that ends in changes (its node gone) reads back as the state the actor had; a whole state then replaces every revision', () =>
      withNats(async (nc) => {
        const store = await openStore(nc, 'changes', 1000, 0); // no delay: no whole state follows the changes
        const kv = await new Kvm(nc).open('changes_reads');
        const s = emptyReadState();
        const saves: Promise<void>[] = [];
        const save = (change: ReadChange) => saves.push(store.saveReads('u@x', s, change, true));
        for (let i = 0; i < 5; i++) markDelivered(s, `old${i}`);
        markDelivered(s, 'a');
        save({ delivered: 'a' }); // a whole state, in flight at once
        for (const id of ['b', 'c', 'd']) (markDelivered(s, id), save({ delivered: id })); // wait behind it
        markRead(s, ['b', 'early']);
        save({ read: ['b', 'early'] });
        unmarkDelivered(s, 'c');
        save({ undelivered: 'c' });
        await Promise.all(saves);
        const firstWhole = { unread: ['old0', 'old1', 'old2', 'old3', 'old4', 'a'], read: [] };
        expect(await revisions(kv, readsKey('u@x'))).toEqual([firstWhole]); // all an earlier version's node reads
        const base = (await kv.get(readsKey('u@x')))!.revision;
        expect(await revisions(kv, changesKey('u@x'))).toEqual([
          { base, changes: [{ delivered: 'b' }, { delivered: 'c' }, { delivered: 'd' }, { read: ['b', 'early'] }, { undelivered: 'c' }] },
        ]);
        // The next owner, on its own connection, without this store closing (a crash).
        const next = async () => {
          let read: ReadStateRecord | undefined;
          await withNats(async (other) => void (read = toRecord(await (await openStore(other, 'changes')).reads('u@x'))));
          return read;
        };
        expect(await next()).toEqual({ unread: ['old0', 'old1', 'old2', 'old3', 'old4', 'a', 'd'], read: ['b', 'early'] });
        markDelivered(s, 'e');
        await store.saveReads('u@x', s, { delivered: 'e' }, true); // the user was quiet: a whole state, as a rollup
        expect(await revisions(kv, readsKey('u@x'))).toEqual([toRecord(s)]);
        // The changes made on the first whole state are still there (no delay: nothing cleared them), and not read.
        expect(await revisions(kv, changesKey('u@x'))).toHaveLength(1);
        expect(await next()).toEqual(toRecord(s));
      }));

    it('a late put of changes made on an older whole state (a node that lost the partition) is not read', () =>
      withNats(async (nc) => {
        const store = await openStore(nc, 'late', 1000, 0);
        const kv = await new Kvm(nc).open('late_reads');
        const s = rs(['a', 'b', 'c']);
        await store.saveReads('u@x', s, { delivered: 'c' }, true);
        const oldBase = (await kv.get(readsKey('u@x')))!.revision;
        markDelivered(s, 'd');
        await store.saveReads('u@x', s, { delivered: 'd' }, true); // a whole state again (no put in flight: a new run)
        await kv.put(changesKey('u@x'), packr.pack({ base: oldBase, changes: [{ delivered: 'stale' }] }));
        const read = async () => {
          let got: ReadStateRecord | undefined;
          await withNats(async (other) => void (got = toRecord(await (await openStore(other, 'late')).reads('u@x'))));
          return got;
        };
        expect(await read()).toEqual({ unread: ['a', 'b', 'c', 'd'], read: [] });
        // Busy again: a whole state, then changes made on it after the stale ones; only the new ones are read.
        markDelivered(s, 'e');
        const whole = store.saveReads('u@x', s, { delivered: 'e' }, true);
        markDelivered(s, 'f');
        await store.saveReads('u@x', s, { delivered: 'f' }, true);
        await whole;
        expect(await revisions(kv, changesKey('u@x'))).toHaveLength(2);
        expect(await read()).toEqual({ unread: ['a', 'b', 'c', 'd', 'e', 'f'], read: [] });
      }));

    it('a history of changes that stops coming (its messages rolled up meanwhile) fails the load instead of hanging or coming back short', () =>
      withNats(async (nc) => {
        const kv = await new Kvm(nc).create('stall_reads', { history: 1 });
        const store = await JetStreamHeldStore.open(nc, kv, { prefix: 'stall', partitions: 4, holdMax: 10, publishTimeoutMs: 200 });
        await kv.put(readsKey('u@x'), packr.pack({ unread: ['a'], read: [] }));
        const base = (await kv.get(readsKey('u@x')))!.revision;
        await kv.put(changesKey('u@x'), packr.pack({ base, changes: [{ delivered: 'b' }] }));
        // A history that yields nothing until it is stopped, as nats.js's does when the messages it expects are gone.
        const internals = store as unknown as { kv: { history: () => Promise<AsyncIterable<never> & { stop(): void }> } };
        internals.kv = Object.create(kv, {
          history: {
            value: async () => {
              let stopped!: () => void;
              const until = new Promise<void>((r) => (stopped = r));
              return { stop: () => stopped(), async *[Symbol.asyncIterator]() { await until; } };
            },
          },
        });
        await expect(store.reads('u@x')).rejects.toThrow(/read only up to revision 0/);
      }));

    it('a busy user quiet for the put delay gets a whole state put after the changes', () =>
      withNats(async (nc) => {
        const store = await openStore(nc, 'quiet', 1000, 20);
        const kv = await new Kvm(nc).open('quiet_reads');
        const s = emptyReadState();
        markDelivered(s, 'a');
        const first = store.saveReads('u@x', s, { delivered: 'a' }, true);
        markDelivered(s, 'b');
        await store.saveReads('u@x', s, { delivered: 'b' }, true);
        await first;
        await until(async () => (await kv.get(changesKey('u@x')))?.value.length === 0, 5000, 'the changes cleared');
        // Whole (a), changes (b), then the whole state again as a rollup, and the changes key cleared (a rollup too).
        expect(store.readsPuts).toBe(3);
        expect(await revisions(kv, readsKey('u@x'))).toEqual([{ unread: ['a', 'b'], read: [] }]);
        expect(await revisions(kv, changesKey('u@x'))).toEqual(['cleared']);
        await store.close();
      }));
  });
});