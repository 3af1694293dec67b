import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TokenBucket } from '../gateway/token-bucket.js';

describe('TokenBucket (frame rate limit, close 4429)', () => {
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  const takeN = (b: TokenBucket, n: number) => {
    let taken = 0;
    for (let i = 0; i < n; i++) if (b.take(Date.now())) taken++;
    return taken;
  };

  it('allows a burst of twice the rate, then refuses', () => {
    const bucket = new TokenBucket(10, 20, Date.now());
    expect(takeN(bucket, 25)).toBe(20);
    expect(bucket.take(Date.now())).toBe(false);
  });

  it('refills at the rate as time passes', () => {
    const bucket = new TokenBucket(10, 20, Date.now());
    takeN(bucket, 20);
    vi.advanceTimersByTime(100);
    expect(takeN(bucket, 5)).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(takeN(bucket, 15)).toBe(10);
  });

  it('never holds more than the burst however long it is idle', () => {
    const bucket = new TokenBucket(10, 20, Date.now());
    vi.advanceTimersByTime(3_600_000);
    expect(takeN(bucket, 30)).toBe(20);
  });

  it('sustains exactly the rate', () => {
    const bucket = new TokenBucket(100, 200, Date.now());
    takeN(bucket, 200);
    let taken = 0;
    for (let ms = 0; ms < 10_000; ms += 5) {
      vi.advanceTimersByTime(5);
      if (bucket.take(Date.now())) taken++;
    }
    expect(taken).toBe(1000);
  });

  it('tolerates a clock that steps back', () => {
    const bucket = new TokenBucket(10, 20, Date.now());
    takeN(bucket, 20);
    expect(bucket.take(Date.now() - 5000)).toBe(false);
  });
});
