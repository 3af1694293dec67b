import { describe, expect, it } from 'vitest';
import { DedupeWindow } from '../store/dedupe-window.js';

describe('dedupe window', () => {
  it('remembers ids for the window and forgets whole generations after it', () => {
    const w = new DedupeWindow(120_000);
    w.add('a', 1_000);
    w.add('b', 60_000);
    expect(w.seenAt('a')).toBe(1_000);
    expect(w.seenAt('zzz')).toBeUndefined();
    w.prune(120_999); // horizon 999: a's generation [0, 30000) still overlaps the window
    expect(w.seenAt('a')).toBe(1_000);
    w.prune(120_000 + 30_000); // horizon 30000: [0, 30000) wholly before it
    expect(w.seenAt('a')).toBeUndefined();
    expect(w.seenAt('b')).toBe(60_000);
  });

  it('keeps every map small: a million ids in one window spread over shards and generations', () => {
    const w = new DedupeWindow(120_000);
    const at = (i: number) => Math.floor(i * 0.12); // 1M ids over 120 s
    for (let i = 0; i < 1_000_000; i++) w.add(`msg-${i}`, at(i));
    expect(w.size).toBe(1_000_000);
    const gens = (w as unknown as { gens: Map<number, Map<string, number>[]> }).gens;
    let largest = 0;
    for (const gen of gens.values()) for (const m of gen) largest = Math.max(largest, m.size);
    expect(largest).toBeLessThan(10_000);
    expect(w.seenAt('msg-999999')).toBe(at(999_999));
  });
});
