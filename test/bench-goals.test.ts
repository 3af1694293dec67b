import { describe, expect, it } from 'vitest';
import { goalLines, goalMet } from '../bench/goals.js';
import { pacedWork } from '../bench/paced-work.js';

describe('bench goal lines (issue 13: one line per goal, then context)', () => {
  it('prints goals as `ratio`, context as `context`, a context with no goal of its own with `-`', () => {
    const out = goalLines([
      { name: 'embedded_inprocess_vs_relay', value: 1.834, goal: 2 },
      { name: 'live_actor_bytes', value: 1449.4, goal: 1536 },
      { name: 'paced_work_factor_10_per_ms', value: 2.456, goal: NaN, info: true },
      { name: 'relay_p99_ms_at_10k', value: NaN, goal: 5, info: true },
    ]);
    expect(out.split('\n')).toEqual([
      'ratio embedded_inprocess_vs_relay 1.83 2',
      'ratio live_actor_bytes 1449 1536',
      'context paced_work_factor_10_per_ms 2.46 -',
      'context relay_p99_ms_at_10k n/a 5',
    ]);
  });

  it('judges upper bounds and `atLeast` goals; a missing value never meets a goal', () => {
    expect(goalMet({ name: 'a', value: 2, goal: 2 })).toBe(true);
    expect(goalMet({ name: 'a', value: 2.01, goal: 2 })).toBe(false);
    expect(goalMet({ name: 'b', value: 2.9, goal: 3, atLeast: true })).toBe(false);
    expect(goalMet({ name: 'c', value: NaN, goal: 3 })).toBe(false);
  });
});

describe('paced work (row a2)', () => {
  it('times the unit back to back and in bursts per tick, each burst size on its own', async () => {
    const r = await pacedWork([1, 10], 5);
    expect(r.hotNsPerUnit).toBeGreaterThan(0);
    expect([...r.pacedNsPerUnit.keys()]).toEqual([1, 10]);
    for (const ns of r.pacedNsPerUnit.values()) expect(ns).toBeGreaterThan(0);
  });
});
