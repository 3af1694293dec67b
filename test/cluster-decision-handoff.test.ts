import type { KV } from '@nats-io/kv';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KvDecisionHandoff } from '../cluster/decision-handoff.js';
import { keyOf } from '../cluster/kv-device-registry.js';

/**
 * cluster/decision-handoff.ts `save` against a KV that refuses some puts and never answers others: it resolves within
 * its wait, never rejects, and says how many histories were not stored (the node counts them in
 * switchboard_store_write_failures_total{store="decisions"}).
 */
describe('KvDecisionHandoff.save', () => {
  afterEach(() => void vi.useRealTimers());

  it('resolves within its wait with the count of histories refused or unanswered', async () => {
    const puts: string[] = [];
    const kv = {
      put(key: string) {
        puts.push(key);
        if (key === keyOf('refused')) return Promise.reject(new Error('no responders'));
        if (key === keyOf('silent')) return new Promise(() => {});
        return Promise.resolve(1);
      },
    } as unknown as KV;
    const handoff = new KvDecisionHandoff(kv);
    const histories: [string, string[]][] = [['ok1', ['a']], ['refused', ['b']], ['silent', ['c']], ['ok2', ['d']]];
    vi.useFakeTimers();
    const saved = handoff.save(histories, 7, 50);
    await vi.advanceTimersByTimeAsync(50); // the silent one's wait runs out
    expect(await saved).toBe(2);
    expect(puts).toEqual(histories.map(([u]) => keyOf(u)));
    expect(await handoff.save([], 7, 50)).toBe(0);
  });
});
