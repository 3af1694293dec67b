import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { backoffMs, CircuitBreaker } from '../senders/circuit-breaker.js';
import { TASKS_PER_SERVICE } from '../senders/batch-runner.js';
import { PushPool } from '../senders/pool.js';
import type { PushJob, PushOutcome } from '../senders/types.js';
import { ManualClock } from './support/manual-clock.js';

const workerFile = fileURLToPath(new URL('./support/scripted-worker.mjs', import.meta.url));
const log = createLogger('silent');
let seq = 0;
const job = (script: string, ttlSeconds?: number, acceptedAt = 1_700_000_000_000, app?: string): PushJob => ({
  jobId: `j${++seq}`, user: 'u', device: 'd', vendor: 'fcm', token: script, ...(app ? { app } : {}),
  message: { id: `m${seq}`, to: 'u', acceptedAt, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) },
});

/** Runs the push while moving the manual clock whenever the pool is waiting on a timer. */
async function drive<T = PushOutcome>(clock: ManualClock, p: Promise<T>, stepMs: number): Promise<{ outcome: T; elapsed: number }> {
  const start = clock.now();
  let done: T | undefined;
  p.then((o) => (done = o));
  while (!done) {
    await new Promise((r) => setImmediate(r));
    if (clock.pending > 0) clock.advance(stepMs);
    else await new Promise((r) => setTimeout(r, 1));
  }
  return { outcome: done, elapsed: clock.now() - start };
}

describe('push retries', () => {
  let pool: PushPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('retries with backoff until the vendor accepts', async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 1 });
    const { outcome, elapsed } = await drive(clock, pool.push(job('retry,retry,ok')), 100);
    expect(outcome).toEqual({ outcome: 'ok' });
    expect(elapsed).toBeGreaterThanOrEqual(500 + 1000); // full-jitter ceiling 500 ms, then 1000 ms
  });

  it('honours Retry-After over a shorter backoff', async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0 });
    const { outcome, elapsed } = await drive(clock, pool.push(job('retry-after-7000,ok')), 1000);
    expect(outcome).toEqual({ outcome: 'ok' });
    expect(elapsed).toBeGreaterThanOrEqual(7000);
    expect(elapsed).toBeLessThan(9000);
  });

  it('gives up after max attempts with the vendor reason, and never retries dead tokens or hard failures', async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0, maxAttempts: 3 });
    expect((await drive(clock, pool.push(job('retry')), 10)).outcome).toEqual({ outcome: 'failed', reason: 'gave up after 3 attempts: 503 ServiceUnavailable' });
    expect((await drive(clock, pool.push(job('dead,ok')), 10)).outcome).toEqual({ outcome: 'dead_token', reason: 'Unregistered' });
    expect((await drive(clock, pool.push(job('fail,ok')), 10)).outcome).toEqual({ outcome: 'failed', reason: 'BadRequest' });
  });

  it("stops retrying when the message's TTL would pass", async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0 });
    const { outcome } = await drive(clock, pool.push(job('retry-after-60000,ok', 30, clock.now())), 1000);
    expect(outcome).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('TTL') });
  });

  it("counts the TTL from the acceptance: a message past it is not pushed, and retries stop at acceptance + TTL", async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0 });
    const late = await drive(clock, pool.push(job('ok', 30, clock.now() - 31_000)), 1000);
    expect(late.outcome).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('TTL of 30 s ran out') });
    expect(pool.batchesSent).toBe(0);
    // Accepted 25 s ago with 30 s: a Retry-After of 10 s would end past acceptance + 30 s.
    const retried = await drive(clock, pool.push(job('retry-after-10000,ok', 30, clock.now() - 25_000)), 1000);
    expect(retried.outcome).toMatchObject({ outcome: 'failed', reason: expect.stringContaining("TTL ends before the next attempt") });
    // `ttlSeconds: 0` (now or never) still gets its one attempt after a push delay.
    expect((await drive(clock, pool.push(job('ok', 0, clock.now() - 5_000)), 1000)).outcome).toEqual({ outcome: 'ok' });
  });

  it('opens the breaker after repeated failures, stops hammering, and closes after a successful probe', async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0, maxAttempts: 1, breaker: { failureThreshold: 3, openMs: 5000 } });
    for (let i = 0; i < 3; i++) await drive(clock, pool.push(job('retry')), 10);
    expect(pool.breakerState('fcm')).toBe('open');
    // With one attempt allowed, a push arriving while the breaker is open waits for it instead of failing.
    const blocked = await drive(clock, pool.push(job('ok')), 10);
    expect(blocked.outcome).toEqual({ outcome: 'ok' });
    expect(blocked.elapsed).toBeGreaterThanOrEqual(5000);
    expect(pool.breakerState('fcm')).toBe('closed');
  });

  it("waiting behind an open breaker uses no attempt: a push is sent once it closes, and another app's pushes go on meanwhile", async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0, maxAttempts: 2, breaker: { failureThreshold: 2, openMs: 1000 } });
    // App "bad" (a bad key, a failing vendor account): two failures open its breaker.
    expect((await drive(clock, pool.push(job('retry', undefined, undefined, 'bad')), 10)).outcome).toMatchObject({ outcome: 'failed' });
    expect(pool.breakerState('fcm', 'bad')).toBe('open');
    // Behind it: the probe after 1 s fails (breaker open again, 2 s), the second attempt after that succeeds.
    const t0 = clock.now();
    const waiting = pool.push(job('retry,ok', undefined, undefined, 'bad'));
    // Another app's push is not held up nor failed by the open breaker.
    // (The clock does not move meanwhile: the push cannot have waited for a breaker.)
    expect(await pool.push(job('ok', undefined, undefined, 'good'))).toEqual({ outcome: 'ok' });
    expect(clock.now()).toBe(t0);
    const behind = await drive(clock, waiting, 100);
    expect(behind.outcome).toEqual({ outcome: 'ok' });
    expect(clock.now() - t0).toBeGreaterThanOrEqual(1000 + 2000);
    expect(pool.breakerState('fcm', 'bad')).toBe('closed');
  });

  it('Web Push: each push service has its own breaker, so a failing one does not hold up the users of another', async () => {
    const clock = new ManualClock();
    const metrics = new Metrics({ defaultMetrics: false });
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, metrics, random: () => 0, maxAttempts: 1, breaker: { failureThreshold: 2, openMs: 60_000 } });
    const breakerGauge = async () => (await metrics.registry.getSingleMetric('switchboard_vendor_breaker_open')!.get()).values.find((v) => v.labels.vendor === 'webpush')?.value;
    const sub = (host: string, script: string): PushJob => ({
      ...job(script), vendor: 'webpush', token: JSON.stringify({ endpoint: `https://${host}/push/${seq}`, keys: { p256dh: 'k', auth: 'a' }, script }),
    });
    for (let i = 0; i < 2; i++) await drive(clock, pool.push(sub('updates.push.services.mozilla.com', 'retry')), 10);
    expect(pool.breakerState('webpush', 'default', 'updates.push.services.mozilla.com')).toBe('open');
    // A Chrome user's subscription (FCM's push service) goes out at once: the clock does not move.
    const t0 = clock.now();
    expect(await pool.push(sub('fcm.googleapis.com', 'ok'))).toEqual({ outcome: 'ok' });
    expect(clock.now()).toBe(t0);
    expect(pool.breakerState('webpush', 'default', 'fcm.googleapis.com')).toBe('closed');
    // The gauge per (vendor, app) stays 1 while any of its services' breakers is open, whatever the others do.
    expect(await breakerGauge()).toBe(1);
    for (let i = 0; i < 2; i++) await drive(clock, pool.push(sub('fcm.googleapis.com', 'retry')), 10);
    expect(pool.breakerState('webpush', 'default', 'fcm.googleapis.com')).toBe('open');
    expect(await breakerGauge()).toBe(1);
  });

  it("bounds the wait for an open breaker by the message's TTL", async () => {
    const clock = new ManualClock();
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock, random: () => 0, maxAttempts: 100, breaker: { failureThreshold: 1, openMs: 10_000, maxOpenMs: 10_000 } });
    await drive(clock, pool.push(job('retry', 1)), 10);
    expect(pool.breakerState('fcm')).toBe('open');
    const { outcome, elapsed } = await drive(clock, pool.push(job('retry', 30, clock.now())), 500);
    expect(outcome).toMatchObject({ outcome: 'failed', reason: expect.stringContaining("TTL ends while the fcm circuit breaker is open") });
    expect(elapsed).toBeLessThanOrEqual(30_000);
  });
});

describe('bulkhead: a push service that never answers', () => {
  it('holds neither the answers of other services pushed in the same turn nor, with many pushes, the workers\' slots', async () => {
    const pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock: new ManualClock(), random: () => 0 });
    try {
      const other = (vendor: PushJob['vendor'], app?: string): PushJob => ({ ...job('ok', undefined, undefined, app), vendor });
      // Far more hung pushes than one worker runs at once, all of one service (an app's APNs that stopped answering),
      // one per turn of the event loop (each its own batch, as pushes come at a low rate)...
      const hung: Promise<PushOutcome>[] = [];
      for (let i = 0; i < 300; i++) {
        hung.push(pool.push({ ...job(`hang#${i}`), vendor: 'apns' })); // 300 devices
        await new Promise((r) => setImmediate(r));
      }
      hung.push(pool.push({ ...job('hang#300'), vendor: 'apns' }));
      // ...and in the same turn as the last, then after, pushes to other services: each answered, none waits.
      const sameTurn = pool.push(other('fcm'));
      await new Promise((r) => setImmediate(r));
      const later = [pool.push(other('hms')), pool.push(other('apns', 'second-app')), pool.push(other('fcm'))];
      const answers = await Promise.race([Promise.all([sameTurn, ...later]), new Promise((r) => setTimeout(() => r('held up'), 5000))]);
      expect(answers).toEqual([{ outcome: 'ok' }, { outcome: 'ok' }, { outcome: 'ok' }, { outcome: 'ok' }]);
      expect(hung).toHaveLength(301);
    } finally {
      await pool.close(50);
    }
  });
});

describe('bulkhead per device', () => {
  it('a Web Push subscription whose requests hang holds at most PUSHES_PER_DEVICE slots: the other users of its push service go on', async () => {
    const pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock: new ManualClock(), random: () => 0 });
    const sub = (name: string, script: string): PushJob => ({
      ...job(script), vendor: 'webpush', token: JSON.stringify({ endpoint: `https://fcm.googleapis.com/wp/${name}`, keys: { p256dh: 'k', auth: 'a' }, script }),
    });
    try {
      // One subscription on Chrome's push service hangs, and its user is sent far more messages than the service's slots.
      for (let i = 0; i < TASKS_PER_SERVICE * 2; i++) {
        void pool.push(sub('stuck', 'hang'));
        await new Promise((r) => setImmediate(r)); // each its own batch
      }
      // Another Chrome user's push goes out, and is answered, at once.
      const answer = await Promise.race([pool.push(sub('healthy', 'ok')), new Promise((r) => setTimeout(() => r('held up'), 5000))]);
      expect(answer).toEqual({ outcome: 'ok' });
    } finally {
      await pool.close(50);
    }
  });
});

describe('closing the pool (SIGTERM)', () => {
  it('answers every push, also those queued behind a hung service\'s bulkhead that never started', async () => {
    const closing = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock: new ManualClock(), random: () => 0 });
    const pushed: Promise<PushOutcome>[] = [];
    for (let i = 0; i < TASKS_PER_SERVICE + 8; i++) {
      pushed.push(closing.push({ ...job('hang'), vendor: 'apns' }));
      await new Promise((r) => setImmediate(r)); // one batch each
    }
    await closing.close(50);
    const outcomes = await Promise.race([Promise.all(pushed), new Promise((r) => setTimeout(() => r('unanswered'), 5000))]);
    expect(outcomes).toHaveLength(TASKS_PER_SERVICE + 8);
    for (const o of outcomes as PushOutcome[]) expect(o).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('sender pool stopped') });
  });

  it('waits for a vendor that never answers at most waitMs, then stops the workers; the push ends failed, not hanging', async () => {
    const closing = new PushPool({ config: { apps: { default: {} } }, log, workerFile, clock: new ManualClock(), random: () => 0 });
    const pushed = closing.push(job('hang'));
    await closing.close(50); // without the bound this waited for the vendor's answer, here never
    expect(await pushed).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('sender pool stopped') });
  });
});

describe('vendor configuration errors', () => {
  it('fail at once, never retried, and log one line per app and vendor naming key id and team id', async () => {
    const clock = new ManualClock();
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    const pool = new PushPool({ config: { apps: { default: {} } }, log: createLogger('info', sink), workerFile, clock, random: () => 0, maxAttempts: 5 });
    try {
      for (let i = 0; i < 3; i++) {
        expect((await drive(clock, pool.push(job('config,ok')), 10)).outcome).toMatchObject({ outcome: 'failed', config: true });
      }
      const logged = lines.filter((l) => l.includes('vendor refused the credentials'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain('key id K1 for team id T1');
      expect(pool.breakerState('fcm')).toBe('closed');
    } finally {
      await pool.close();
    }
  });
});

describe('circuit breaker and backoff', () => {
  it('doubles the open period after a failed probe, capped', () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker(clock, { failureThreshold: 1, openMs: 1000, maxOpenMs: 3000 });
    b.failure();
    expect(b.admit()).toBe(1000);
    clock.advance(1000);
    expect(b.admit()).toBe(0); // the probe
    expect(b.state).toBe('half_open');
    expect(b.admit()).toBeGreaterThan(0); // only one probe at a time
    b.failure();
    expect(b.admit()).toBe(2000);
    clock.advance(2000);
    b.admit();
    b.failure();
    expect(b.admit()).toBe(3000);
  });

  it('backs off exponentially with full jitter under a cap', () => {
    expect([1, 2, 3, 4].map((a) => backoffMs(a, () => 0.999999))).toEqual([499, 999, 1999, 3999]);
    expect(backoffMs(30, () => 0.999999)).toBe(59_999);
    expect(backoffMs(3, () => 0)).toBe(0);
  });
});
