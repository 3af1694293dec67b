import { EventEmitter } from 'node:events';
import type { KV, KvEntry } from '@nats-io/kv';
import { describe, expect, it, vi } from 'vitest';
import { ACQUIRE_RETRY_MS, LeaseKeeper, type LeaseKeeperOptions } from '../cluster/lease-keeper.js';
import { Membership, NodeIdContendedError, NodeIdInUseError, PartitionsMismatchError, nodeKey, type GatewayGone, type MembershipView } from '../cluster/membership.js';
import { untilJetStreamReady } from '../cluster/startup.js';
import { ManualClock } from './support/manual-clock.js';

/**
 * LeaseKeeper in virtual time against an in-memory KV with the same compare-and-set rules as JetStream
 * (create fails on a live key, update fails unless the revision is the key's latest). The real-server
 * behaviour is in lease-keeper.int.test.ts.
 */

class FakeKv {
  private seq = 0;
  readonly data = new Map<string, { value: Uint8Array | null; revision: number }>();
  private readonly watchers = new Set<(e: KvEntry) => void>();
  calls = 0;
  /** While set, every call hangs until released (a server that stopped answering). */
  hang?: Promise<void>;
  watchMuted = false;
  /** The `timeout` argument of each update (ms; undefined = the bucket's API timeout). */
  readonly updateTimeouts: (number | undefined)[] = [];
  /** The next update is stored but its answer is lost (the client times out). */
  loseNextAnswer = false;
  /** The next update is refused with this error, nothing stored. */
  nextUpdateError?: Error;

  private async enter(): Promise<void> {
    this.calls++;
    await Promise.resolve();
    if (this.hang) await this.hang;
  }

  private write(k: string, value: Uint8Array | null): number {
    const revision = ++this.seq;
    this.data.set(k, { value, revision });
    const e = entry(k, value, revision);
    if (!this.watchMuted) for (const w of this.watchers) w(e);
    return revision;
  }

  async create(k: string, v: Uint8Array): Promise<number> {
    await this.enter();
    const cur = this.data.get(k);
    if (cur?.value) throw conflict(cur.revision);
    return this.write(k, v);
  }

  async update(k: string, v: Uint8Array, revision: number, timeout?: number): Promise<number> {
    this.updateTimeouts.push(timeout);
    await this.enter();
    const refused = this.nextUpdateError;
    this.nextUpdateError = undefined;
    if (refused) throw refused;
    const cur = this.data.get(k);
    if ((cur?.revision ?? 0) !== revision) throw conflict(cur?.revision ?? 0);
    const written = this.write(k, v);
    if (this.loseNextAnswer) {
      this.loseNextAnswer = false;
      throw Object.assign(new Error('timeout'), { name: 'TimeoutError' });
    }
    return written;
  }

  async get(k: string): Promise<KvEntry | null> {
    await this.enter();
    const cur = this.data.get(k);
    return cur ? entry(k, cur.value, cur.revision) : null;
  }

  /**
   * Compare-and-sets made with `previousSeq` are checked when the put arrives (`casChecked`: as nats-server 2.9 does
   * it, before consensus, nats-server#4320: two racing ones may both pass, the last applied keeps the key).
   */
  casChecked: 'on-apply' | 'before-consensus' = 'on-apply';
  /** Runs once just before the next `put` is applied (another write landing between a read and a compare-and-set). */
  beforeNextPut?: () => void;

  /** With `previousSeq`, a compare-and-set as JetStream does it: the key's last revision must be that (0: no key). */
  async put(k: string, v: Uint8Array, opts?: { previousSeq?: number }): Promise<number> {
    const before = this.data.get(k)?.revision ?? 0;
    await this.enter();
    const hook = this.beforeNextPut;
    this.beforeNextPut = undefined;
    hook?.();
    const now = this.casChecked === 'on-apply' ? this.data.get(k)?.revision ?? 0 : before;
    if (opts?.previousSeq !== undefined && now !== opts.previousSeq) throw conflict(now);
    return this.write(k, v);
  }

  async delete(k: string): Promise<void> {
    await this.enter();
    this.write(k, null);
  }

  /** The keys matching `filter` (`n.>` style: a trailing `>` matches the rest) whose last entry is a PUT. */
  async keys(filter = '>'): Promise<AsyncIterable<string>> {
    await this.enter();
    const prefix = filter.endsWith('>') ? filter.slice(0, -1) : filter;
    const keys = [...this.data].filter(([k, cur]) => cur.value !== null && (filter.endsWith('>') ? k.startsWith(prefix) : k === filter)).map(([k]) => k);
    return (async function* () {
      yield* keys;
    })();
  }

  /** A rogue or newer writer, bypassing CAS. */
  overwrite(k: string, v: object): number {
    return this.write(k, new TextEncoder().encode(JSON.stringify(v)));
  }

  async watch(): Promise<AsyncIterable<KvEntry> & { stop(): void }> {
    const queue: KvEntry[] = [];
    let wake: (() => void) | undefined;
    let stopped = false;
    const push = (e: KvEntry) => {
      queue.push(e);
      wake?.();
    };
    for (const [k, cur] of this.data) push(entry(k, cur.value, cur.revision));
    this.watchers.add(push);
    return {
      stop: () => {
        stopped = true;
        this.watchers.delete(push);
        wake?.();
      },
      async *[Symbol.asyncIterator]() {
        while (!stopped) {
          if (queue.length === 0) await new Promise<void>((r) => (wake = r));
          while (queue.length > 0) yield queue.shift()!;
        }
      },
    };
  }

  lease(p: number): { owner: string; expiresAt: number; epoch: number; since?: number } | null {
    const v = this.data.get(`p.${p}`)?.value;
    return v ? JSON.parse(new TextDecoder().decode(v)) : null;
  }
}

function entry(key: string, value: Uint8Array | null, revision: number): KvEntry {
  return {
    bucket: 'test', key, rawKey: key, revision, created: new Date(), length: value?.length ?? 0,
    operation: value ? 'PUT' : 'DEL', value: value ?? new Uint8Array(),
    json: <T>() => JSON.parse(new TextDecoder().decode(value!)) as T,
    string: () => new TextDecoder().decode(value!),
  };
}

function conflict(last: number): Error {
  return Object.assign(new Error(`wrong last sequence: ${last}`), { code: 10071 });
}

class FixedMembership extends EventEmitter<{ change: [live: readonly string[]] }> implements MembershipView {
  left = false;
  constructor(private nodes: string[]) {
    super();
  }
  live(): readonly string[] {
    return [...this.nodes].sort();
  }
  set(nodes: string[]): void {
    this.nodes = nodes;
    this.emit('change', this.live());
  }
  async leave(): Promise<void> {
    this.left = true;
  }
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

function setup(overrides: Partial<LeaseKeeperOptions> = {}) {
  const clock = new ManualClock();
  const kv = new FakeKv();
  const membership = new FixedMembership(['a']);
  const log: string[] = [];
  const keeper = new LeaseKeeper({
    confirmWaitMs: 0, // the in-memory KV's compare-and-set is exact: no double grant to wait for
    kv: kv as unknown as KV, nodeId: 'a', partitions: 4, clock, membership, leaseMs: 2000, renewMs: 500,
    host: {
      acquire: async (p, f) => void log.push(`acquire ${p}@${f.revision}`),
      release: async (p) => void log.push(`release ${p}`),
      released: (p) => void log.push(`released ${p}`),
      lost: (p) => void log.push(`lost ${p}`),
    },
    ...overrides,
  });
  const tick = async (ms = 0) => {
    clock.advance(ms);
    await flush();
  };
  return { clock, kv, membership, keeper, log, tick };
}

describe('LeaseKeeper (virtual time)', () => {
  it('takes its assigned share, renews by revision and keeps the acquisition revision as the fence', async () => {
    const { kv, keeper, tick } = setup();
    await keeper.start();
    await tick();
    expect([...keeper.owned()].sort()).toEqual([0, 1, 2, 3]);
    expect(keeper.settled()).toBe(true);
    const fence = keeper.fence(0)!;
    const rev = kv.data.get('p.0')!.revision;
    await tick(500);
    expect(kv.data.get('p.0')!.revision).toBeGreaterThan(rev);
    expect(kv.lease(0)).toMatchObject({ owner: 'a', epoch: 1 });
    expect(keeper.fence(0)).toEqual(fence);
  });

  it('does not take a lease another node holds until it lapses by its own expiresAt', async () => {
    const { clock, kv, keeper, tick } = setup();
    kv.overwrite('p.2', { owner: 'b', expiresAt: clock.now() + 1500, epoch: 7 });
    await keeper.start();
    await tick();
    expect(keeper.owned().has(2)).toBe(false);
    await tick(1499);
    expect(keeper.owned().has(2)).toBe(false);
    await tick(1);
    expect(keeper.owned().has(2)).toBe(true);
    expect(kv.lease(2)).toMatchObject({ owner: 'a', epoch: 8 });
  });

  it('since: a released lease carries its run of graceful handoffs on, a lapsed or unknown one starts a new run', async () => {
    const { clock, kv, keeper, tick } = setup();
    kv.overwrite('p.0', { owner: '', expiresAt: 0, epoch: 4, since: 2 }); // released by b: the run from 2 goes on
    kv.overwrite('p.1', { owner: 'b', expiresAt: clock.now() - 1, epoch: 6, since: 3 }); // b lapsed: its state is gone
    kv.overwrite('p.2', { owner: '', expiresAt: 0, epoch: 5 }); // released by a version that kept no since
    await keeper.start();
    await tick();
    expect(kv.lease(0)).toMatchObject({ owner: 'a', epoch: 5, since: 2 });
    expect(kv.lease(1)).toMatchObject({ owner: 'a', epoch: 7, since: 7 });
    expect(kv.lease(2)).toMatchObject({ owner: 'a', epoch: 6, since: 6 });
    expect(kv.lease(3)).toMatchObject({ owner: 'a', epoch: 1, since: 1 });
    expect(keeper.fence(0)).toMatchObject({ epoch: 5, since: 2 });
    await tick(500); // renewals keep it
    expect(kv.lease(0)).toMatchObject({ epoch: 5, since: 2 });
    const stopped = keeper.stop(); // and the release hands it on
    await flush();
    await tick();
    await stopped;
    expect(kv.lease(0)).toMatchObject({ owner: '', epoch: 5, since: 2 });
  });

  it('a lease taken under it is lost at once: the watch shows a newer writer', async () => {
    const { clock, kv, keeper, log, tick } = setup();
    await keeper.start();
    await tick();
    kv.overwrite('p.1', { owner: 'b', expiresAt: clock.now() + 2000, epoch: 9 });
    await flush();
    expect(keeper.isValid(1)).toBe(false);
    expect(log).toContain('lost 1');
  });

  it('a refused renewal (CAS on a stale revision) is a loss, even with the watch silent', async () => {
    const { clock, kv, keeper, log, tick } = setup();
    await keeper.start();
    await tick();
    kv.watchMuted = true;
    kv.overwrite('p.3', { owner: 'b', expiresAt: clock.now() + 2000, epoch: 9 });
    expect(keeper.isValid(3)).toBe(true); // nothing told us yet
    await tick(500);
    expect(keeper.isValid(3)).toBe(false);
    expect(log).toContain('lost 3');
  });

  it('with the server silent, validity ends at renewal + leaseMs - margin and loss is reported before any I/O', async () => {
    const { clock, kv, keeper, log, tick } = setup({ safetyMarginMs: 200 });
    await keeper.start();
    await tick();
    const acquiredAt = clock.now();
    kv.hang = new Promise(() => {});
    await tick(1799);
    expect(keeper.isValid(0)).toBe(true);
    const calls = kv.calls;
    const callsAtLoss: number[] = [];
    keeper.host({
      lost: (p) => {
        callsAtLoss.push(kv.calls);
        log.push(`lost ${p}`);
      },
    });
    clock.advance(1); // synchronous: no microtask ran, no KV reply was possible
    expect(keeper.isValid(0)).toBe(false);
    expect(keeper.fence(0)).toBeUndefined();
    expect(log.filter((l) => l.startsWith('lost')).sort()).toEqual(['lost 0', 'lost 1', 'lost 2', 'lost 3']);
    expect(callsAtLoss).toEqual([calls, calls, calls, calls]);
    expect(clock.now() - acquiredAt).toBe(1800);
  });

  it('never has two writes in flight for one partition, however long the server takes', async () => {
    const { kv, keeper, tick } = setup();
    await keeper.start();
    await tick();
    const calls = kv.calls;
    kv.hang = new Promise(() => {});
    for (let i = 0; i < 3; i++) await tick(500);
    expect(kv.calls - calls).toBe(4); // one renewal per held partition, not one per round
  });

  it('waits for a renewal until the local deadline; one answered after 1.2 s still extends the lease, and the next goes out at once', async () => {
    const { kv, keeper, log, tick } = setup({ partitions: 1, safetyMarginMs: 200 });
    await keeper.start();
    await tick(); // acquired at t=0: valid until 1800
    let answer!: () => void;
    kv.hang = new Promise<void>((r) => (answer = r));
    await tick(500); // the renewal of t=500 hangs
    expect(kv.updateTimeouts.at(-1)).toBe(1300); // until the local deadline, not the bucket's 1 s API timeout
    await tick(1200);
    const calls = kv.calls;
    kv.hang = undefined;
    answer(); // answered at t=1700, before the deadline of 1800
    await flush();
    expect(keeper.isValid(0)).toBe(true);
    expect(kv.calls - calls).toBe(1); // the next renewal left on the answer, not at the next round
    await tick(550); // t=2250: past the first deadline, within the one of the t=500 renewal (2300)
    expect(keeper.isValid(0)).toBe(true);
    expect(log.filter((l) => l.startsWith('lost'))).toEqual([]);
  });

  it('a renewal stored whose answer was lost is not mistaken for a taken lease: the next one renews from its revision', async () => {
    const { kv, keeper, log, tick } = setup({ partitions: 1 });
    await keeper.start();
    await tick();
    kv.loseNextAnswer = true;
    await tick(500); // stored, but the keeper saw a timeout and still holds the older revision
    await tick(500); // this renewal's compare-and-set fails on that older revision
    await tick(500);
    expect(log.filter((l) => l.startsWith('lost'))).toEqual([]);
    expect(keeper.isValid(0)).toBe(true);
    await tick(1500);
    expect(keeper.isValid(0)).toBe(true);
    expect(kv.lease(0)).toMatchObject({ owner: 'a', epoch: 1 });
  });

  it('a renewal answered "wrong last sequence unknown" (10164: another write still being applied) is retried, not taken as a loss', async () => {
    const { kv, keeper, log, tick } = setup({ partitions: 1 });
    await keeper.start();
    await tick();
    kv.nextUpdateError = Object.assign(new Error('wrong last sequence unknown'), { code: 10164 });
    await tick(500);
    await tick(500);
    expect(log.filter((l) => l.startsWith('lost'))).toEqual([]);
    expect(keeper.isValid(0)).toBe(true);
    expect(kv.lease(0)).toMatchObject({ owner: 'a' });
  });

  it('hands off when the assignment moves: onRelease first, then the release write, renewing meanwhile', async () => {
    const drains: (() => void)[] = [];
    const { clock, kv, keeper, membership, log, tick } = setup();
    keeper.host({
      acquire: async (p, f) => void log.push(`acquire ${p}@${f.revision}`),
      release: (p) => {
        log.push(`release ${p}`);
        return new Promise<void>((r) => drains.push(r));
      },
      released: (p) => void log.push(`released ${p}`),
      lost: (p) => void log.push(`lost ${p}`),
    });
    await keeper.start();
    await tick();
    membership.set(['a', 'b']); // b now gets some partitions
    await tick();
    const moving = [0, 1, 2, 3].filter((p) => log.includes(`release ${p}`));
    expect(moving.length).toBe(2);
    // Draining takes longer than the lease: the lease must not lapse meanwhile.
    for (let i = 0; i < 6; i++) await tick(500);
    for (const p of moving) {
      expect(keeper.isValid(p)).toBe(true);
      expect(kv.lease(p)!.owner).toBe('a');
      expect(kv.lease(p)!.expiresAt).toBeGreaterThan(clock.now());
    }
    for (const d of drains) d();
    await tick();
    for (const p of moving) {
      expect(keeper.owned().has(p)).toBe(false);
      expect(kv.lease(p)).toMatchObject({ owner: '', expiresAt: 0 });
      expect(log.indexOf(`released ${p}`)).toBeGreaterThan(log.indexOf(`release ${p}`));
    }
    expect(keeper.settled()).toBe(true);
  });

  it('stop() leaves membership, releases every lease and stops its timers', async () => {
    const { clock, kv, keeper, membership, tick } = setup();
    await keeper.start();
    await tick();
    const stopped = keeper.stop();
    await flush(); // leave() resolves, then the hand-off round is due
    await tick();
    await stopped;
    expect(membership.left).toBe(true);
    expect(keeper.owned().size).toBe(0);
    for (let p = 0; p < 4; p++) expect(kv.lease(p)).toMatchObject({ owner: '', expiresAt: 0 });
    expect(clock.pending).toBe(0);
  });

  it('an acquire handler that rejects is called again while the lease is held, with waits that grow; settled() only once it served', async () => {
    let failures = 3;
    const calls: number[] = [];
    const { clock, keeper, tick } = setup({
      partitions: 1,
      host: {
        acquire: async (p) => {
          calls.push(clock.now());
          if (failures-- > 0) throw new Error(`consumer for ${p} not created: timeout`);
        },
      },
    });
    await keeper.start();
    await tick();
    expect(calls.length).toBe(1);
    expect(keeper.owned().has(0)).toBe(true); // held and renewed meanwhile
    expect(keeper.settled()).toBe(false); // but not served
    for (let i = 0; i < 40 && calls.length < 4; i++) await tick(50);
    expect(calls.map((t) => t - calls[0])).toEqual([0, ACQUIRE_RETRY_MS.first, 3 * ACQUIRE_RETRY_MS.first, 7 * ACQUIRE_RETRY_MS.first]);
    expect(keeper.settled()).toBe(true);
    await tick(10_000);
    expect(calls.length).toBe(4); // served: not called again
  });

  it('the retries of a rejecting acquire handler end with the tenure: at a handoff (promptly), a loss and a stop', async () => {
    const calls: string[] = [];
    const { clock, kv, keeper, membership, tick } = setup({
      partitions: 3,
      host: {
        acquire: async (p) => {
          calls.push(`acquire ${p}`);
          throw new Error('JetStream not answering');
        },
        release: async (p) => void calls.push(`release ${p}`),
        lost: (p) => void calls.push(`lost ${p}`),
      },
    });
    await keeper.start();
    await tick();
    for (let i = 0; i < 6; i++) await tick(500); // a few retries each, the waits now at 2 s and more
    const count = (p: number) => calls.filter((c) => c === `acquire ${p}`).length;
    expect([count(0), count(1), count(2)].every((n) => n >= 3)).toBe(true);
    // A loss: no more calls for that partition.
    const atLoss = count(2);
    kv.overwrite('p.2', { owner: 'b', expiresAt: clock.now() + 60_000, epoch: 99 });
    await flush();
    expect(calls).toContain('lost 2');
    // A handoff: the release runs at once, not after the wait in progress, and no call follows it.
    membership.set(['a', 'b']);
    await tick();
    const moved = [0, 1].filter((p) => calls.includes(`release ${p}`));
    expect(moved.length).toBe(1);
    const stays = moved[0] === 0 ? 1 : 0;
    const before = { moved: count(moved[0]) };
    const stopped = keeper.stop();
    await flush();
    await tick();
    await stopped;
    expect(calls).toContain(`release ${stays}`);
    await tick(60_000);
    expect(count(moved[0])).toBe(before.moved);
    expect(count(2)).toBe(atLoss);
    expect(clock.pending).toBe(0);
  });

  it('a wait to retry an acquire handler leaves no timer behind once its lease is lost or the keeper abandoned', async () => {
    for (const end of ['loss', 'abandon'] as const) {
      const { clock, kv, keeper, tick } = setup({ partitions: 1, host: { acquire: async () => Promise.reject(new Error('timeout')) } });
      await keeper.start();
      await tick();
      const waiting = clock.pending; // the next round and the retry's wait
      if (end === 'loss') kv.overwrite('p.0', { owner: 'b', expiresAt: clock.now() + 60_000, epoch: 99 });
      else keeper.abandon();
      await flush();
      if (end === 'loss') expect(keeper.owned().size).toBe(0);
      expect(clock.pending, end).toBe(end === 'loss' ? waiting - 1 : 0);
    }
  });

  it('takes nothing while it is not live itself', async () => {
    const { keeper, membership, tick } = setup();
    membership.set(['b']);
    await keeper.start();
    await tick(2000);
    expect(keeper.owned().size).toBe(0);
    expect(keeper.settled()).toBe(false);
  });
});

describe('Membership (virtual time)', () => {
  it('refuses a second live process under a node id; one that replaces a crashed process starts', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const warnings: string[] = [];
    const log = { debug() {}, info() {}, warn: (_o: object, m?: string) => void warnings.push(m ?? '') };
    const first = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000 });
    await first.start();
    const twin = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000, log });
    const refused = twin.start().then(() => 'started', (e: unknown) => e);
    await flush(); // it read the fresh beat and waits two beat periods
    for (let t = 0; t < 1000; t += 500) {
      clock.advance(500); // the first one beats on
      await flush();
    }
    expect(await refused).toBeInstanceOf(NodeIdInUseError);
    expect(String(await refused)).toContain('node id a is in use by another live node');

    first.halt(); // kill -9: its last beat is fresh, but no other comes
    const restarted = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000, log });
    const started = restarted.start().then(() => 'started', (e: unknown) => e);
    await flush();
    for (let t = 0; t < 1000; t += 500) {
      clock.advance(500);
      await flush();
    }
    expect(await started).toBe('started');
    expect(restarted.live()).toEqual(['a']);
    expect(warnings).toEqual([]); // the crashed process's beat is older than this start: not a duplicate
    restarted.halt();
  });

  it.each([
    ['compare-and-set checked as writes apply: one of the two first beats fails', 'on-apply' as const],
    ['both compare-and-sets succeed (nats-server 2.9 on a replicated bucket, nats-server#4320): the leader keeps one', 'before-consensus' as const],
  ])('two processes started at the same moment under one node id, %s; the other is refused', async (_, casChecked) => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    kv.casChecked = casChecked;
    const twins = [0, 1].map(() => new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000, confirmWaitMs: 50 }));
    // Both read the key before either writes: neither finds a live beat.
    const results = twins.map((m) => m.start().then(() => 'started', (e: unknown) => e));
    await flush();
    for (let t = 0; t < 2000; t += 50) {
      clock.advance(50); // the winner beats on
      await flush();
    }
    const outcomes = await Promise.all(results);
    expect(outcomes.filter((o) => o === 'started')).toHaveLength(1);
    expect(outcomes.find((o) => o !== 'started')).toBeInstanceOf(NodeIdInUseError);
    for (const m of twins) m.halt();
  });

  it('refuses to join live nodes that announce another SWITCHBOARD_PARTITIONS, before writing a beat; a dead one\'s count does not matter', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const first = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000, partitions: 64 });
    await first.start();
    const same = new Membership({ kv: kv as unknown as KV, nodeId: 'b', clock, beatMs: 500, deadAfterMs: 2000, partitions: 64 });
    await same.start();
    const other = new Membership({ kv: kv as unknown as KV, nodeId: 'c', clock, beatMs: 500, deadAfterMs: 2000, partitions: 32 });
    const refused = await other.start().then(() => 'started', (e: unknown) => e);
    expect(refused).toBeInstanceOf(PartitionsMismatchError);
    expect(String(refused)).toContain('SWITCHBOARD_PARTITIONS is 32 but live node a uses 64: give every node the same value');
    expect(kv.data.has(nodeKey('c'))).toBe(false); // never counted as live, so no partition was assigned to it
    expect(first.live()).toEqual(['a', 'b']);

    // Once the 64-partition nodes are gone (a whole cluster restarted with a new count), their beats no longer count.
    first.halt();
    same.halt();
    clock.advance(2000);
    const restarted = new Membership({ kv: kv as unknown as KV, nodeId: 'c', clock, beatMs: 500, deadAfterMs: 2000, partitions: 32 });
    expect(await restarted.start().then(() => 'started', (e: unknown) => e)).toBe('started');
    restarted.halt();
  });

  it('two nodes with different SWITCHBOARD_PARTITIONS whose start checks both passed: the later one is told by the other\'s beat, once, and the earlier one goes on', async () => {
    const clock = new ManualClock();
    // Two views of one bucket that do not see each other's writes yet: each start check finds nobody (the race of two
    // nodes starting together); then each one's beats are carried over to the other, as the bucket's watch would.
    const kvs = { b: new FakeKv(), a: new FakeKv() };
    const early = new Membership({ kv: kvs.b as unknown as KV, nodeId: 'b', clock, beatMs: 500, deadAfterMs: 2000, partitions: 64 });
    const late = new Membership({ kv: kvs.a as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000, partitions: 32 });
    const told: Record<string, PartitionsMismatchError[]> = { a: [], b: [] };
    early.on('partitionsMismatch', (e) => told.b.push(e));
    late.on('partitionsMismatch', (e) => told.a.push(e));
    await early.start();
    clock.advance(300);
    await late.start(); // not refused: it could not see 'b' yet
    const carry = (from: FakeKv, to: FakeKv, node: string) => to.overwrite(nodeKey(node), JSON.parse(new TextDecoder().decode(from.data.get(nodeKey(node))!.value!)));
    for (let i = 0; i < 4; i++) {
      carry(kvs.b, kvs.a, 'b');
      carry(kvs.a, kvs.b, 'a');
      clock.advance(500);
      await flush();
    }
    expect(told.b).toEqual([]); // the earlier node stays
    expect(told.a).toHaveLength(1); // once, though it heard 'b' four times
    expect(told.a[0].message).toBe('SWITCHBOARD_PARTITIONS is 32 but live node b uses 64: give every node the same value');
    early.halt();
    late.halt();
  });

  it('two such nodes that started in the same ms: the one with the greater id is told', async () => {
    const clock = new ManualClock();
    const nodes = (['a', 'b'] as const).map((id, i) => ({ id, kv: new FakeKv(), m: undefined as unknown as Membership, p: i === 0 ? 64 : 32 }));
    const told: string[] = [];
    for (const n of nodes) {
      n.m = new Membership({ kv: n.kv as unknown as KV, nodeId: n.id, clock, beatMs: 500, deadAfterMs: 2000, partitions: n.p });
      n.m.on('partitionsMismatch', () => told.push(n.id));
    }
    await Promise.all(nodes.map((n) => n.m.start()));
    for (let i = 0; i < 4; i++) {
      for (const [from, to] of [[nodes[0], nodes[1]], [nodes[1], nodes[0]]]) {
        to.kv.overwrite(nodeKey(from.id), JSON.parse(new TextDecoder().decode(from.kv.data.get(nodeKey(from.id))!.value!)));
      }
      clock.advance(500);
      await flush();
    }
    expect(told).toEqual(['b']);
    for (const n of nodes) n.m.halt();
  });

  it('a restart after a graceful leave (the key deleted) and one whose crashed predecessor\'s last beat lands late both start', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const first = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000 });
    await first.start();
    await first.leave(); // a DEL marker is the key's last entry
    const second = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000 });
    const started = second.start().then(() => 'started', (e: unknown) => e);
    for (let t = 0; t < 500; t += 50) {
      clock.advance(50);
      await flush();
    }
    expect(await started).toBe('started');
    second.halt(); // kill -9
    const third = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000 });
    const restarted = third.start().then(() => 'started', (e: unknown) => e);
    // The dead process's last beat, stamped before it died, lands between the check and the compare-and-set: the
    // compare-and-set fails once, and the next round (that beat is older than its wait) starts.
    const diedAt = clock.now();
    kv.beforeNextPut = () => void kv.overwrite(nodeKey('a'), { node: 'a', at: diedAt, instance: 'dead' });
    for (let t = 0; t < 3000; t += 50) {
      clock.advance(50);
      await flush();
    }
    expect(await restarted).toBe('started');
    third.halt();
  });

  it('a claim that loses its compare-and-set three times in a row says so, and start-up names the cause while it retries', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const m = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000 });
    // Before each of our puts another write to the key lands (stamped long ago, so the check never refuses): three
    // lost compare-and-sets in a row.
    const lateWrite = (): void => {
      kv.overwrite(nodeKey('a'), { node: 'a', at: clock.now() - 10_000, instance: 'other' });
      kv.beforeNextPut = lateWrite;
    };
    kv.beforeNextPut = lateWrite;
    const claimed = m.start().then(() => 'started', (e: unknown) => e);
    for (let t = 0; t < 1000 && !(await Promise.race([claimed, Promise.resolve(undefined)])); t += 50) {
      clock.advance(50);
      await flush();
    }
    const err = await claimed;
    expect(err).toBeInstanceOf(NodeIdContendedError);
    expect(String(err)).toContain('node id a: another write to its key came in before ours was confirmed, 3 times in a row');
    m.halt();

    // untilJetStreamReady's warning names the contention, not JetStream; a plain error keeps the generic one.
    const warnings: string[] = [];
    const log = { warn: (_o: object, msg: string) => void warnings.push(msg) };
    const errors = [err as Error, new Error('no responders')];
    vi.useFakeTimers();
    try {
      const up = untilJetStreamReady(async () => {
        const next = errors.shift();
        if (next) throw next;
        return 'up';
      }, 'membership', log);
      await vi.advanceTimersByTimeAsync(200 + 400); // its two waits
      expect(await up).toBe('up');
    } finally {
      vi.useRealTimers();
    }
    expect(warnings).toEqual([(err as NodeIdContendedError).retryNote, 'JetStream not ready yet; retrying']);
    expect(warnings[0]).toContain('another process may be starting under the same SWITCHBOARD_NODE_ID');
  });

  it('gatewayGone: a gateway silent for gatewayGoneAfterMs, once per silence; a router-only node never; one heard again is reported anew', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const opts = { kv: kv as unknown as KV, clock, beatMs: 500, deadAfterMs: 2000 };
    const owner = new Membership({ ...opts, nodeId: 'owner', gatewayGoneAfterMs: 10_000 });
    const gone: GatewayGone[] = [];
    owner.on('gatewayGone', (g) => gone.push(g));
    await owner.start();
    const gw = new Membership({ ...opts, nodeId: 'gw' });
    const router = new Membership({ ...opts, nodeId: 'router', roles: ['router'] });
    await gw.start();
    await router.start();
    await flush();
    gw.halt(); // kill -9: no more beats, no session closed
    router.halt();
    const advance = async (ms: number) => {
      for (let t = 0; t < ms; t += 500) {
        clock.advance(500);
        await flush();
      }
    };
    await advance(9500);
    expect(gone).toEqual([]); // dead for leases after 2 s, not yet gone for its sessions
    await advance(1000);
    expect(gone).toEqual([{ node: 'gw', before: Infinity }]);
    await advance(20_000);
    expect(gone).toHaveLength(1);

    const back = new Membership({ ...opts, nodeId: 'gw' }); // the same id, a new process: its start is after the silence
    const started = back.start();
    await advance(1000);
    await started;
    await flush();
    expect(gone).toHaveLength(2); // the process before it is gone: its sessions opened before this one started
    expect(gone[1]).toEqual({ node: 'gw', before: expect.any(Number) });
    expect(gone[1].before).toBeGreaterThan(clock.now() - 2000);
    back.halt();
    await advance(10_500);
    expect(gone.map((g) => g.before)).toEqual([Infinity, gone[1].before, Infinity]);
    owner.halt();
  });

  it('gatewayGone at once when another process replaced a gateway within the dead-after time (kill -9, restart)', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const opts = { kv: kv as unknown as KV, clock, beatMs: 500, deadAfterMs: 2000 };
    const owner = new Membership({ ...opts, nodeId: 'owner' });
    const gone: GatewayGone[] = [];
    owner.on('gatewayGone', (g) => gone.push(g));
    await owner.start();
    const first = new Membership({ ...opts, nodeId: 'gw' });
    await first.start();
    clock.advance(500);
    await flush();
    first.halt();
    const second = new Membership({ ...opts, nodeId: 'gw' });
    const started = second.start();
    for (let t = 0; t < 1500; t += 500) {
      clock.advance(500);
      await flush();
    }
    await started;
    await flush();
    expect(gone).toHaveLength(1);
    expect(gone[0].node).toBe('gw');
    expect(gone[0].before).toBeLessThanOrEqual(clock.now());
    expect(gone[0].before).toBeGreaterThan(clock.now() - 1500); // the new process's start, not the old one's
    second.halt();
    owner.halt();
  });

  it('resumed: a beat that comes after a gap past deadAfterMs (a pause) is told, so the gateway resends its sessions', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const m = new Membership({ kv: kv as unknown as KV, nodeId: 'gw', clock, beatMs: 500, deadAfterMs: 2000 });
    let resumed = 0;
    m.on('resumed', () => resumed++);
    await m.start();
    for (let t = 0; t < 2000; t += 500) {
      clock.advance(500);
      await flush();
    }
    expect(resumed).toBe(0);
    let release!: () => void;
    kv.hang = new Promise<void>((r) => (release = r)); // the beat stalls 5 s, as in a pause
    for (let t = 0; t < 5000; t += 500) {
      clock.advance(500);
      await flush();
    }
    kv.hang = undefined;
    release();
    await flush();
    clock.advance(500);
    await flush();
    expect(resumed).toBe(1);
    m.halt();
  });

  it('counts a node live while its own heartbeat timestamp is fresh, and drops it at once when it leaves', async () => {
    const clock = new ManualClock();
    const kv = new FakeKv();
    const a = new Membership({ kv: kv as unknown as KV, nodeId: 'a', clock, beatMs: 500, deadAfterMs: 2000 });
    const b = new Membership({ kv: kv as unknown as KV, nodeId: 'b.example', clock, beatMs: 500, deadAfterMs: 2000 });
    const changes: string[][] = [];
    a.on('change', (live) => changes.push([...live]));
    await a.start();
    await b.start();
    await flush();
    expect(a.live()).toEqual(['a', 'b.example']);

    b.halt(); // crashed: no more heartbeats, key stays
    for (let t = 0; t < 1500; t += 500) {
      clock.advance(500);
      await flush();
    }
    expect(a.isLive('b.example')).toBe(true);
    clock.advance(500);
    await flush();
    expect(a.live()).toEqual(['a']);

    const c = new Membership({ kv: kv as unknown as KV, nodeId: 'c', clock });
    await c.start();
    await flush();
    expect(a.live()).toEqual(['a', 'c']);
    await c.leave();
    await flush();
    expect(a.live()).toEqual(['a']);
    expect(changes).toEqual([['a'], ['a', 'b.example'], ['a'], ['a', 'c'], ['a']]);
    a.halt();
    expect(clock.pending).toBe(0);
  });
});
