import type { Clock } from '../base/clock.js';
import { systemClock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import { BatchRunner, DEFAULT_BATCH_SIZE } from './batch-runner.js';
import { CircuitBreaker, DEFAULT_MAX_ATTEMPTS, backoffMs, type BreakerOptions } from './circuit-breaker.js';
import type { PushJob, PushOutcome, PushSink } from './types.js';
import type { SenderConfig } from './vendor-config.js';

export { DEFAULT_BATCH_SIZE };
/** Attempts per push before it is reported failed. */
export { DEFAULT_MAX_ATTEMPTS };
/** Without a message TTL, retries and waits for an open circuit breaker stop after this long. */
export const DEFAULT_RETRY_WINDOW_MS = 10 * 60_000;
/** A vendor's refusal of an app's credentials is logged at most this often per (app, vendor). */
const CONFIG_ERROR_LOG_INTERVAL_MS = 60_000;

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
 * and full jitter, honouring Retry-After, bounded by attempts (SWITCHBOARD_PUSH_MAX_ATTEMPTS) and by the message's
 * TTL; a circuit breaker per (app, vendor) stops hammering a vendor that keeps failing. Waiting for an open breaker
 * uses no attempt (a push that never reached the vendor was not tried); the TTL bounds that wait.
 */
export class PushPool implements PushSink {
  private readonly runner: BatchRunner;
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly waiting = new Set<{ timer: ReturnType<Clock['setTimeout']>; wake: () => void }>();
  private readonly clock: Clock;
  private readonly maxAttempts: number;
  private closed = false;
  private readonly configErrorsLogged = new Map<string, number>();

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
    // The message's TTL counts from its acceptance (section 4), however long it was held or delayed before this push.
    const { ttlSeconds, acceptedAt } = job.message;
    const deadline = ttlSeconds !== undefined ? acceptedAt + ttlSeconds * 1000 : this.clock.now() + DEFAULT_RETRY_WINDOW_MS;
    let last: PushOutcome = { outcome: 'failed', reason: 'not attempted' };
    for (let attempt = 1; ; ) {
      if (this.closed) return { outcome: 'failed', reason: `sender pool stopped before ${job.vendor} answered: ${reasonOf(last)}` };
      // A message past its TTL is not pushed at all; `ttlSeconds: 0` ("now or never") gets its one attempt.
      if (attempt === 1 && ttlSeconds !== 0 && this.clock.now() >= deadline) {
        return { outcome: 'failed', reason: `not sent: the message's TTL of ${ttlSeconds} s ran out before the ${job.vendor} push` };
      }
      // An open breaker is a wait, not an attempt: only the message's TTL bounds it (issue 9, part 4).
      const wait = breaker.admit();
      if (wait > 0) {
        if (this.clock.now() + wait >= deadline) {
          return { outcome: 'failed', reason: `gave up: the message's TTL ends while the ${job.vendor} circuit breaker is open (${reasonOf(last)})` };
        }
        await this.sleep(wait);
        continue;
      }
      const started = this.clock.now();
      last = await this.runner.run(job);
      this.opts.metrics?.pushSeconds.labels(job.vendor).observe((this.clock.now() - started) / 1000);
      if (last.outcome !== 'retry') {
        breaker.success();
        if (last.outcome === 'failed' && last.config) this.reportConfigError(job, last.reason);
        return last;
      }
      breaker.failure();
      // Closed meanwhile (the workers stopped under this attempt): no wait for a retry that cannot run.
      if (this.closed) return { outcome: 'failed', reason: `sender pool stopped before ${job.vendor} answered: ${reasonOf(last)}` };
      if (attempt === this.maxAttempts) break;
      const delay = Math.max(last.retryAfterMs ?? 0, backoffMs(attempt, this.opts.random));
      if (this.clock.now() + delay >= deadline) {
        return { outcome: 'failed', reason: `gave up: the message's TTL ends before the next attempt (${reasonOf(last)})` };
      }
      this.opts.metrics?.pushRetries.labels(job.vendor).inc();
      attempt++;
      await this.sleep(delay);
    }
    return { outcome: 'failed', reason: `gave up after ${this.maxAttempts} attempts: ${reasonOf(last)}` };
  }

  /**
   * Stops retrying (waiting pushes end as failed), sends what was queued, waits for the vendors' answers at most
   * `waitMs` (ms; the node's SIGTERM budget, SWITCHBOARD_SHUTDOWN_TIMEOUT_MS), then stops the workers. A push cut
   * short leaves its message unsettled: the node stopped its actors first, so it is sent again at the next start.
   */
  async close(waitMs = Infinity): Promise<void> {
    this.closed = true;
    for (const w of this.waiting) {
      this.clock.clearTimeout(w.timer);
      w.wake();
    }
    await this.runner.destroy(waitMs);
  }

  /**
   * A vendor refused our credentials (e.g. APNs InvalidProviderToken): one log line per (app, vendor) and minute,
   * naming what the reason names (key id, team id; never a key), however many pushes fail alike.
   */
  private reportConfigError(job: PushJob, reason: string): void {
    const key = `${job.app ?? 'default'}/${job.vendor}`;
    const now = this.clock.now();
    if (now - (this.configErrorsLogged.get(key) ?? Number.NEGATIVE_INFINITY) < CONFIG_ERROR_LOG_INTERVAL_MS) return;
    this.configErrorsLogged.set(key, now);
    this.opts.log.error({ vendor: job.vendor, app: job.app ?? 'default', reason }, 'vendor refused the credentials of this app: its pushes fail until the configuration is fixed');
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
