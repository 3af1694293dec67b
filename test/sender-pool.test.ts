import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../base/logger.js';
import { BatchRunner } from '../senders/batch-runner.js';
import { PushPool } from '../senders/pool.js';
import type { PushJob } from '../senders/types.js';

const log = createLogger('silent');
const job = (n: number, vendor: PushJob['vendor'] = 'apns', token = `tok-${n}`): PushJob => ({
  jobId: `m${n}:d`, user: 'u', device: 'd', vendor, token, message: { id: `m${n}`, to: 'u', text: 'hi', acceptedAt: 0 },
});

describe('sender pool (the senders hook)', () => {
  let pool: PushPool | undefined;
  afterEach(async () => {
    await pool?.close();
    pool = undefined;
  });

  it('records a push to a vendor without credentials as failed with the reason, never as success', async () => {
    pool = new PushPool({ config: { apps: { default: {} } }, log });
    const outcomes = await Promise.all([job(1, 'apns'), job(2, 'fcm'), job(3, 'hms'), job(4, 'webpush')].map((j) => pool!.push(j)));
    expect(outcomes.map((o) => o.outcome)).toEqual(['failed', 'failed', 'failed', 'failed']);
    expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining('SWITCHBOARD_APNS_KEY_FILE') });
    expect(outcomes[1]).toMatchObject({ reason: expect.stringContaining('SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE') });
  });

  it('sends jobs to the workers in batches', async () => {
    pool = new PushPool({ config: { apps: { default: {} } }, log, batchSize: 100 });
    const outcomes = await Promise.all(Array.from({ length: 1000 }, (_, i) => pool!.push(job(i))));
    expect(outcomes).toHaveLength(1000);
    expect(pool.batchesSent).toBeLessThanOrEqual(11);
  });

  it('reports the jobs of a crashed worker instead of dropping them, and keeps serving', async () => {
    const workerFile = fileURLToPath(new URL('./support/crashing-worker.mjs', import.meta.url));
    pool = new PushPool({ config: { apps: { default: {} } }, log, workerFile, batchSize: 10, maxAttempts: 3, random: () => 0 });
    const outcomes = await Promise.all([job(1), job(2, 'apns', 'crash'), job(3)].map((j) => pool!.push(j)));
    // Its batch-mates are rerun on their own and succeed; the poisoned job is retried, then reported failed.
    expect(outcomes[0]).toEqual({ outcome: 'ok' });
    expect(outcomes[2]).toEqual({ outcome: 'ok' });
    expect(outcomes[1]).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('gave up after 3 attempts: sender worker failed') });
    expect(await pool.push(job(4))).toEqual({ outcome: 'ok' });
  });
});

describe('sender workers between tasks', () => {
  it("keep their event loop running: an idle worker reads a vendor's close of a kept-alive connection and sends keep-alive pings", async () => {
    const workerFile = fileURLToPath(new URL('./support/ticking-worker.mjs', import.meta.url));
    const runner = new BatchRunner({ apps: { default: {} } }, 1, 10, workerFile);
    try {
      await runner.run(job(1), 'default/apns');
      const idleFrom = performance.now();
      // The property is the worker thread's own timers while no task runs: real time, which a fake clock cannot stand in for.
      await new Promise((r) => setTimeout(r, 300));
      const idleMs = performance.now() - idleFrom;
      const second = await runner.run(job(2), 'default/apns');
      const ticks = Number(/ticks (\d+)/.exec(second.outcome === 'failed' ? second.reason : '')?.[1]);
      // Piscina's default (atomics 'sync') parks the thread in Atomics.wait between tasks: 0-1 ticks instead of ~30.
      expect(ticks).toBeGreaterThanOrEqual(Math.floor(idleMs / 10 / 3));
    } finally {
      await runner.destroy(100);
    }
  });
});
