import { describe, expect, it } from 'vitest';
import { kneeOf } from '../bench/stats.js';

describe('kneeOf (the max-rate window of a sweep)', () => {
  it('takes the smallest window within 90% of the best rate, whatever order the sweep ran in', () => {
    const points = [
      { window: 1000, rate: 4393, p99Ms: 372 },
      { window: 250, rate: 3681, p99Ms: 140 },
      { window: 500, rate: 4907, p99Ms: 169 },
    ];
    expect(kneeOf(points)).toEqual({ window: 500, rate: 4907, p99Ms: 169 });
  });

  it('keeps the largest window when only it reaches the max rate', () => {
    const points = [
      { window: 250, rate: 2000, p99Ms: 120 },
      { window: 500, rate: 3000, p99Ms: 160 },
      { window: 1000, rate: 4000, p99Ms: 250 },
    ];
    expect(kneeOf(points).window).toBe(1000);
  });

  it('counts a window at exactly the share as at the max rate, and refuses an empty sweep', () => {
    expect(kneeOf([{ window: 100, rate: 90, p99Ms: 1 }, { window: 200, rate: 100, p99Ms: 2 }]).window).toBe(100);
    expect(kneeOf([{ window: 100, rate: 89, p99Ms: 1 }, { window: 200, rate: 100, p99Ms: 2 }]).window).toBe(200);
    expect(() => kneeOf([])).toThrow(/no points/);
  });
});
