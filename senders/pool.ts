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
 * TTL; a circuit breaker per push service (`pushServiceOf`: an app's vendor, for Web Push also the service host) stops hammering a service that keeps failing. Waiting for an open breaker
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

  /** The breaker of `vendor` for `app`; for Web Push, of the push service at `host` (see `pushServiceOf`). */
  breakerState(vendor: string, app = 'default', host?: string): string {
    return this.breakers.get(serviceKey(app, vendor, host))?.state ?? 'closed';
  }

  async push(job: PushJob): Promise<PushOutcome> {
    const service = pushServiceOf(job);
    const breaker = this.breakerFor(job, service);
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
      last = await this.runner.run(job, service);
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

  private breakerFor(job: PushJob, key: string): CircuitBreaker {
    let b = this.breakers.get(key);
    if (!b) {
      const app = job.app ?? 'default';
      const host = job.vendor === 'webpush' ? key.slice(`${app}/webpush/`.length) : undefined;
      b = new CircuitBreaker(this.clock, this.opts.breaker, (state) => {
        this.opts.log.warn({ vendor: job.vendor, app, ...(host !== undefined ? { host } : {}), state }, 'vendor circuit breaker changed state');
        // One gauge per (vendor, app): open while any of its push services' breakers is (Web Push has several).
        const prefix = `${app}/${job.vendor}`;
        const open = [...this.breakers].some(([k, other]) => (k === prefix || k.startsWith(`${prefix}/`)) && (other === b ? state : other.state) !== 'closed');
        this.opts.metrics?.breakerOpen.labels(job.vendor, app).set(open ? 1 : 0);
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

/**
 * The push service a job goes to, the unit of its circuit breaker and of its batches' bulkhead
 * (senders/batch-runner.ts TASKS_PER_SERVICE): `<app>/<vendor>`, and for Web Push also the push service's host,
 * which the browser's subscription names (FCM for Chrome, Mozilla's autopush, Apple's, WNS for Edge): one failing
 * service, or one subscription whose service answers 503, must not hold up the users of the others (with one breaker
 * per app, six 503s for one subscription held every other Web Push user's push for 17 s). A token that is no
 * subscription gets a key of its own; its push fails in the worker as before.
 */
export function pushServiceOf(job: PushJob): string {
  const app = job.app ?? 'default';
  if (job.vendor !== 'webpush') return serviceKey(app, job.vendor);
  try {
    return serviceKey(app, job.vendor, new URL((JSON.parse(job.token) as { endpoint: string }).endpoint).host);
  } catch {
    return serviceKey(app, job.vendor, '(not a subscription)');
  }
}

function serviceKey(app: string, vendor: string, host?: string): string {
  return host === undefined ? `${app}/${vendor}` : `${app}/${vendor}/${host}`;
}

function reasonOf(o: PushOutcome): string {
  return o.outcome === 'ok' ? 'ok' : o.reason;
}
