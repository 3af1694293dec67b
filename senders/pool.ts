import type { Clock } from '../base/clock.js';
import { systemClock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import { BatchRunner, DEFAULT_BATCH_SIZE } from './batch-runner.js';
import { CircuitBreaker, backoffMs, type BreakerOptions } from './circuit-breaker.js';
import type { PushJob, PushOutcome, PushSink } from './types.js';
import type { SenderConfig } from './vendor-config.js';

export { DEFAULT_BATCH_SIZE };
/** Attempts per push before it is reported failed. */
export const DEFAULT_MAX_ATTEMPTS = 5;
/** Without a message TTL, retries stop after this long. */
export const DEFAULT_RETRY_WINDOW_MS = 10 * 60_000;

export interface PushPoolOptions {
  config: SenderConfig;
  log: Logger;
  /** Worker threads, default 1 (vendor I/O is asynchronous; one thread keeps connections warm). */
  threads?: number;
  /** Jobs per task, default DEFAULT_BATCH_SIZE. */
  batchSize?: number;
  /** The worker module, default the compiled senders/worker.js (tests pass a crashing one). */
  workerFile?: string;
  /** Attempts per push, default DEFAULT_MAX_ATTEMPTS. */
  maxAttempts?: number;
  breaker?: BreakerOptions;
  clock?: Clock;
  metrics?: Metrics;
  random?: () => number;
}

/**
 * The senders hook: offline pushes leave the actors as typed jobs and come back as final outcomes (ok,
 * dead_token, failed). Attempts run in the Piscina pool; `retry` answers are retried here with exponential backoff
 * and full jitter, honouring Retry-After, bounded by attempts and by the message's TTL; a circuit breaker per
 * (app, vendor) stops hammering a vendor that keeps failing.
 */
export class PushPool implements PushSink {
  private readonly runner: BatchRunner;
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly waiting = new Set<{ timer: ReturnType<Clock['setTimeout']>; wake: () => void }>();
  private readonly clock: Clock;
  private readonly maxAttempts: number;
  private closed = false;

  constructor(private readonly opts: PushPoolOptions) {
    this.clock = opts.clock ?? systemClock;
    this.maxAttempts = opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.runner = new BatchRunner(opts.config, opts.threads ?? 1, opts.batchSize ?? DEFAULT_BATCH_SIZE, opts.workerFile, (err, jobs) =>
      opts.log.error({ err: err instanceof Error ? err.message : String(err), jobs }, 'sender worker failed a batch; its jobs will be retried'),
    );
  }

  get batchesSent(): number {
    return this.runner.batchesSent;
  }

  breakerState(vendor: string, app = 'default'): string {
    return this.breakers.get(`${app}/${vendor}`)?.state ?? 'closed';
  }

  async push(job: PushJob): Promise<PushOutcome> {
    const breaker = this.breakerFor(job);
    const ttlMs = job.message.ttlSeconds !== undefined ? job.message.ttlSeconds * 1000 : DEFAULT_RETRY_WINDOW_MS;
    const deadline = Math.max(job.message.acceptedAt, this.clock.now()) + ttlMs;
    let last: PushOutcome = { outcome: 'failed', reason: 'not attempted' };
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (this.closed) return { outcome: 'failed', reason: `sender pool stopped before ${job.vendor} answered: ${reasonOf(last)}` };
      const wait = breaker.admit();
      if (wait > 0) {
        last = { outcome: 'retry', reason: `${job.vendor} circuit breaker is open` };
      } else {
        const started = this.clock.now();
        last = await this.runner.run(job);
        this.opts.metrics?.pushSeconds.labels(job.vendor).observe((this.clock.now() - started) / 1000);
        if (last.outcome !== 'retry') {
          breaker.success();
          return last;
        }
        breaker.failure();
      }
      if (attempt === this.maxAttempts) break;
      const delay = Math.max(wait, last.outcome === 'retry' ? last.retryAfterMs ?? 0 : 0, backoffMs(attempt, this.opts.random));
      if (this.clock.now() + delay >= deadline) {
        return { outcome: 'failed', reason: `gave up: the message's TTL ends before the next attempt (${reasonOf(last)})` };
      }
      this.opts.metrics?.pushRetries.labels(job.vendor).inc();
      await this.sleep(delay);
    }
    return { outcome: 'failed', reason: `gave up after ${this.maxAttempts} attempts: ${reasonOf(last)}` };
  }

  /** Stops retrying (waiting pushes end as failed), sends what was queued, then stops the workers. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting) {
      this.clock.clearTimeout(w.timer);
      w.wake();
    }
    await this.runner.destroy();
  }

  private breakerFor(job: PushJob): CircuitBreaker {
    const key = `${job.app ?? 'default'}/${job.vendor}`;
    let b = this.breakers.get(key);
    if (!b) {
      b = new CircuitBreaker(this.clock, this.opts.breaker, (state) => {
        this.opts.log.warn({ vendor: job.vendor, app: job.app ?? 'default', state }, 'vendor circuit breaker changed state');
        this.opts.metrics?.breakerOpen.labels(job.vendor, job.app ?? 'default').set(state === 'closed' ? 0 : 1);
      });
      this.breakers.set(key, b);
    }
    return b;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: this.clock.setTimeout(() => {
          this.waiting.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      this.waiting.add(entry);
    });
  }
}

function reasonOf(o: PushOutcome): string {
  return o.outcome === 'ok' ? 'ok' : o.reason;
}
