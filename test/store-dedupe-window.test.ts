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

  it('answers an id accepted again after the window with its latest time, not the expired one', () => {
    const w = new DedupeWindow(120_000);
    w.add('x', 0);
    w.add('x', 121_000); // the first acceptance left the window; its generation [0, 30000) is still kept
    w.prune(122_000);
    expect(w.seenAt('x')).toBe(121_000); // so a third copy a second later is a duplicate
    w.add('y', 50_000);
    w.add('y', 51_000); // same generation: the time moves, no second entry
    expect(w.seenAt('y')).toBe(51_000);
    expect(w.size).toBe(3);
  });

  it('takes ids out of time order (replay) and drops each generation by its own times', () => {
    const w = new DedupeWindow(16_000, 16); // generations of 1 s
    w.add('late', 10_500);
    w.add('early', 2_500);
    w.add('middle', 5_500);
    w.prune(2_999 + 16_000);
    expect([w.seenAt('early'), w.seenAt('middle'), w.seenAt('late')]).toEqual([2_500, 5_500, 10_500]);
    w.prune(3_000 + 16_000);
    expect([w.seenAt('early'), w.seenAt('middle'), w.seenAt('late')]).toEqual([undefined, 5_500, 10_500]);
    w.prune(11_000 + 16_000);
    expect(w.size).toBe(0);
  });

  it('finds every one of a million ids in one window and none other, each table a fraction of them', () => {
    const w = new DedupeWindow(120_000);
    const at = (i: number) => Math.floor(i * 0.12); // 1M ids over 120 s: 4 generations of 250,000
    for (let i = 0; i < 1_000_000; i++) w.add(`msg-${i}`, at(i));
    expect(w.size).toBe(1_000_000);
    // 16 tables per generation, each grown (or sized from the previous generation) to at most 4 slots per id.
    expect(w.largestTable).toBeLessThanOrEqual(65_536);
    for (let i = 0; i < 1_000_000; i += 997) expect(w.seenAt(`msg-${i}`)).toBe(at(i));
    for (let i = 0; i < 1_000; i++) expect(w.seenAt(`msg-${1_000_000 + i}`)).toBeUndefined();
    expect(w.seenAt('')).toBeUndefined();
  });
});
