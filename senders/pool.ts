import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from '../runtime/logger.js';
import type { PushJob, PushOutcome, PushSink } from './types.js';
import type { SenderConfig } from './vendor-config.js';

/** Jobs per Piscina task: one job per task tops out near 28k tasks/s here, batches of 100 near 400k items/s. */
export const DEFAULT_BATCH_SIZE = 100;

export interface PushPoolOptions {
  config: SenderConfig;
  log: Logger;
  /** Worker threads, default 1 (vendor I/O is asynchronous; one thread keeps connections warm). */
  threads?: number;
  /** Jobs per task, default DEFAULT_BATCH_SIZE. */
  batchSize?: number;
  /** The worker module, default the compiled senders/worker.js (tests pass a crashing one). */
  workerFile?: string;
}

interface Pending {
  job: PushJob;
  resolve: (o: PushOutcome) => void;
}

/**
 * The senders hook: offline pushes leave the actors as typed jobs and travel to a Piscina pool in batches.
 * A batch is flushed when full or on the next turn of the event loop, so a lone push is not held back.
 */
export class PushPool implements PushSink {
  private readonly pool: Piscina<PushJob[], PushOutcome[]>;
  private readonly batchSize: number;
  private readonly log: Logger;
  private batch: Pending[] = [];
  private flushScheduled = false;
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;
  /** Piscina tasks started; with batching far fewer than jobs. */
  batchesSent = 0;

  constructor(opts: PushPoolOptions) {
    const threads = opts.threads ?? 1;
    this.batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    this.log = opts.log;
    this.pool = new Piscina({ filename: opts.workerFile ?? workerFile(), workerData: opts.config, minThreads: threads, maxThreads: threads, idleTimeout: 60_000 });
  }

  push(job: PushJob): Promise<PushOutcome> {
    if (this.closed) return Promise.resolve({ outcome: 'retry', reason: 'sender pool is shutting down' });
    return new Promise((resolve) => {
      this.batch.push({ job, resolve });
      if (this.batch.length >= this.batchSize) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Stops taking jobs, sends what was queued, waits for every batch in flight, then stops the workers. */
  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    await Promise.all(this.inFlight);
    await this.pool.destroy();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchesSent++;
    const task = this.pool.run(batch.map((p) => p.job)).then(
      (outcomes) => batch.forEach((p, i) => p.resolve(outcomes[i] ?? { outcome: 'failed', reason: 'worker returned no outcome' })),
      (err: unknown) => {
        // A crashed worker: its jobs are reported, never dropped silently.
        this.log.error({ err: String(err), jobs: batch.length }, 'sender worker failed a batch');
        for (const p of batch) p.resolve({ outcome: 'retry', reason: `sender worker failed: ${String(err)}` });
      },
    );
    const tracked = task.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }
}

/** The compiled worker; under vitest the sources are .ts, so point at the build in dist/. */
function workerFile(): string {
  const here = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = fileURLToPath(new URL('../dist/senders/worker.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`sender worker not found at ${here} or ${built}: run npm run build`);
}
