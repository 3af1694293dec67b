import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DecisionHistory, DECISIONS_PER_USER } from '../actors/decision-history.js';
import { MAX_DETAIL_CHARS, packDecision, unpackDecision } from '../actors/decision-pack.js';
import type { Decision } from '../protocol/index.js';
import { harness, settle, until } from './support/actors-fakes.js';

/** Issue 10 part 4: at least the last 100 decisions per user, past passivation, packed, within a memory bound. */

const AT = Date.UTC(2026, 10, 30, 7, 0);
const typical = (i: number): Decision => ({ id: `msg-${String(i).padStart(8, '0')}`, route: 'mobile', reason: 'idle', targets: [{ device: 'iphone', via: 'apns', outcome: 'ok' }], at: AT + i });

describe('packed decisions', () => {
  it('round-trips every field, unicode ids, unknown codes and the silent flag', () => {
    const d: Decision = {
      id: 'Ünïcødé 😀 id', route: 'pc_fallback', reason: 'quiet_hours', at: AT,
      targets: [
        { device: 'pc-1', via: 'pc', outcome: 'ack_timeout' },
        { device: 'phone', via: 'fcm', outcome: 'failed', detail: 'fcm 500 INTERNAL', silent: true },
        { device: 'tab', via: 'hms' },
      ],
    };
    expect(unpackDecision(packDecision(d))).toEqual(d);
    const future = { ...d, route: 'held', reason: 'some_new_reason', targets: [] } as unknown as Decision;
    expect(unpackDecision(packDecision(future))).toEqual(future);
  });

  it('keeps a vendor reason to MAX_DETAIL_CHARS characters and long ids whole', () => {
    const d: Decision = { id: 'x'.repeat(128), route: 'mobile', reason: 'idle', at: AT, targets: [{ device: 'é'.repeat(128), via: 'apns', outcome: 'failed', detail: 'r'.repeat(1000) }] };
    const back = unpackDecision(packDecision(d));
    expect(back.id).toBe(d.id);
    expect(back.targets[0].device).toBe(d.targets[0].device);
    expect(back.targets[0].detail).toBe('r'.repeat(MAX_DETAIL_CHARS));
  });

  it('round-trips any text, ASCII or not, short or past 255 bytes, and any instant', () => {
    // Text of whole characters (a lone surrogate has no UTF-8 form), from the ASCII fast path to the general one and
    // switching between them mid-string; ids up to 300 characters cross the one-byte length.
    const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme-ascii', minLength: 250, maxLength: 300 }));
    fc.assert(
      fc.property(text, text, fc.integer({ min: 0, max: 2 ** 48 - 1 }), (id, device, at) => {
        const d: Decision = { id, route: 'pc', reason: 'pc_active', at, targets: [{ device, via: 'pc', outcome: 'acked' }] };
        expect(unpackDecision(packDecision(d))).toEqual(d);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips the edges of the ASCII fast path, and keeps any instant within 0..2^48 - 1', () => {
    const one = (id: string, at = AT): Decision => ({ id, route: 'pc', reason: 'pc_active', at, targets: [{ device: 'd', via: 'pc' }] });
    for (const id of ['\x7f', '\x80', '\x00\x01\x1f', 'a'.repeat(254), 'a'.repeat(255), `${'a'.repeat(200)}é${'b'.repeat(60)}`, `é${'a'.repeat(300)}`]) {
      expect(unpackDecision(packDecision(one(id))).id).toBe(id);
    }
    expect([-5, 1.7, Number.NaN, 2 ** 49].map((at) => unpackDecision(packDecision(one('m', at))).at)).toEqual([0, 1, 0, 2 ** 48 - 1]);
  });

  it('a typical one-target decision packs into about 30 bytes (measured, not assumed)', () => {
    const bytes = packDecision(typical(1)).length;
    // at 6 + route 1 + reason 1 + id 1+12 + count 1 + device 1+6 + via 1 + outcome 1 + flags 1 = 32
    expect(bytes).toBe(32);
  });
});

describe('DecisionHistory', () => {
  it('keeps the last 100 per user, newest first', () => {
    const h = new DecisionHistory();
    for (let i = 0; i < 250; i++) h.add('u', typical(i));
    h.seal('u');
    const got = h.newest('u', 1000);
    expect(got).toHaveLength(DECISIONS_PER_USER);
    expect(got[0].id).toBe(typical(249).id);
    expect(got[99].id).toBe(typical(150).id);
  });

  it('marks a history merged (cluster) until it is dropped: one made anew after the memory bound dropped it is not', () => {
    const h = new DecisionHistory(4096);
    h.add('a', typical(1));
    h.seal('a');
    expect(h.merged('a')).toBe(false);
    h.merge('a', [packDecision(typical(0))]);
    expect(h.merged('a')).toBe(true);
    expect(h.newest('a', 10).map((d) => d.id)).toEqual([typical(1).id, typical(0).id]);
    for (let i = 0; i < 200; i++) h.add(`other${i}`, typical(i)); // past 4 KiB: 'a', least recently written, goes
    h.add('a', typical(2));
    expect(h.newest('a', 10).map((d) => d.id)).toEqual([typical(2).id]);
    expect(h.merged('a')).toBe(false);
    h.merge('b', []); // nothing here, nothing saved: no history made, so none marked
    expect(h.merged('b')).toBe(false);
    expect(h.stats.users).toBeLessThan(202);
  });

  it('accounts about 60 bytes per settled decision, ~6 KiB for a user with a full history', () => {
    const h = new DecisionHistory();
    for (let i = 0; i < 100; i++) h.add('u', typical(i));
    const open = h.stats.bytes;
    h.seal('u');
    const packed = h.stats.bytes;
    expect(packed).toBeLessThan(open / 3);
    expect(packed / 100).toBeLessThan(60);
  });

  it('an entry still in flight is an object whose outcomes show as they arrive, then it is packed', () => {
    const h = new DecisionHistory();
    const d: Decision = { id: 'm', route: 'pc', reason: 'pc_active', at: AT, targets: [{ device: 'pc', via: 'pc' }] };
    h.add('u', d);
    h.seal('u'); // not final yet: stays an object
    d.targets[0].outcome = 'acked';
    expect(h.newest('u', 1)[0].targets[0].outcome).toBe('acked');
    h.seal('u');
    d.targets[0].outcome = 'ack_timeout'; // packed: later changes to the object no longer count
    expect(h.newest('u', 1)[0].targets[0].outcome).toBe('acked');
  });

  it('stays within its byte bound by dropping the least recently written users whole', () => {
    const h = new DecisionHistory(20_000);
    for (let u = 0; u < 50; u++) {
      for (let i = 0; i < 20; i++) h.add(`user-${u}`, typical(i));
      h.seal(`user-${u}`, true);
    }
    expect(h.stats.bytes).toBeLessThanOrEqual(20_000);
    expect(h.newest('user-49', 100)).toHaveLength(20);
    expect(h.newest('user-0', 100)).toEqual([]);
    h.add('user-1', typical(1)); // written again: most recent now, whatever it held before
    expect(h.newest('user-1', 100).length).toBeGreaterThan(0);
  });

  it('a user written again after the others were counts as recently written: the bound drops the others first', () => {
    const h = new DecisionHistory(1_000_000);
    const users = Array.from({ length: 10 }, (_, u) => `user-${u}`);
    for (const u of users) h.add(u, typical(1));
    for (let round = 0; round < 3; round++) for (const u of users.slice(1)) h.add(u, typical(2)); // user-0 is left alone
    h.add('user-0', typical(3)); // written again after a round of everyone else's writes: moves to the end
    // Shrink the bound by filling one more user: the least recently written go first, user-0 stays.
    const small = new DecisionHistory(20_000); // ten users of two open entries fit; 'big' pushes it over
    for (const u of users) small.add(u, typical(1));
    for (const u of users.slice(1)) small.add(u, typical(2));
    small.add('user-0', typical(3));
    for (let i = 0; i < 60; i++) small.add('big', typical(i));
    expect(small.stats.bytes).toBeLessThanOrEqual(20_000);
    expect(small.newest('user-0', 100).length).toBeGreaterThan(0);
    expect(small.newest('user-1', 100)).toEqual([]);
    expect(h.newest('user-0', 100)).toHaveLength(2);
  });

  it('evicts in exact least-recently-written order: every user kept was written after every user dropped', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 39 }), { minLength: 1, maxLength: 600 }), fc.integer({ min: 600, max: 12_000 }), (writes, bound) => {
        const h = new DecisionHistory(bound);
        const lastWrite = new Map<string, number>();
        writes.forEach((u, i) => {
          h.add(`user-${u}`, typical(i));
          h.seal(`user-${u}`);
          lastWrite.set(`user-${u}`, i);
        });
        expect(h.stats.bytes).toBeLessThanOrEqual(Math.max(bound, 6000)); // one user alone may exceed a tiny bound
        const kept = [...lastWrite.keys()].filter((u) => h.newest(u, 1).length > 0);
        const dropped = [...lastWrite.keys()].filter((u) => h.newest(u, 1).length === 0);
        expect(kept).toContain(`user-${writes[writes.length - 1]}`); // the user just written is never dropped
        for (const k of kept) for (const d of dropped) expect(lastWrite.get(k)!).toBeGreaterThan(lastWrite.get(d)!);
      }),
    );
  });

  it('drops the users of a partition that moved away', () => {
    const h = new DecisionHistory();
    h.add('a', typical(1));
    h.add('b', typical(2));
    h.drop((u) => u === 'a');
    expect(h.newest('a', 10)).toEqual([]);
    expect(h.newest('b', 10)).toHaveLength(1);
    expect(h.stats.users).toBe(1);
  });
});

describe('decisions outlive the user actor (directory)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => vi.useRealTimers());

  it('keeps the last 100 decisions after the actor passivated (the README example no longer shows [])', async () => {
    const h = harness({ passivateAfterMs: 1000 });
    try {
      await h.registry.put('u1', 'pixel', { os: 'android', token: 't' });
      for (let i = 0; i < 120; i++) h.route('u1', `m${i}`);
      await until(() => h.settled.length === 120);
      await settle(h);
      await vi.advanceTimersByTimeAsync(1600);
      expect(h.router.stats.liveActors).toBe(0);
      const r = await h.router.answer({ type: 'decisions_query', user: 'u1', limit: 100 });
      if (r.type !== 'decisions') throw new Error(JSON.stringify(r));
      expect(r.decisions).toHaveLength(100);
      expect(r.decisions[0]).toMatchObject({ id: 'm119', route: 'mobile', reason: 'no_pc', targets: [{ device: 'pixel', via: 'fcm', outcome: 'ok' }] });
      expect(r.decisions[99].id).toBe('m20');
    } finally {
      h.router.stop();
    }
  });
});
