import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { within } from '../base/within.js';
import type { PushJob, PushOutcome } from './types.js';
import type { SenderConfig } from './vendor-config.js';

/** Jobs per Piscina task: one job per task tops out near 28k tasks/s here, batches of 100 near 400k items/s. */
export const DEFAULT_BATCH_SIZE = 100;
/** Batches a worker runs at once. */
export const TASKS_PER_WORKER = 16;

interface Pending {
  job: PushJob;
  resolve: (o: PushOutcome) => void;
}

/**
 * One attempt of each push, run in Piscina workers in batches. A batch is flushed when full or on the next turn
 * of the event loop, so a lone push is not held back. A worker that dies takes no job with it: the jobs of its
 * batch come back as `retry`.
 */
export class BatchRunner {
  private readonly pool: Piscina<PushJob[], PushOutcome[]>;
  private batch: Pending[] = [];
  private flushScheduled = false;
  private readonly inFlight = new Set<Promise<void>>();
  /** Piscina tasks started; with batching far fewer than jobs. */
  batchesSent = 0;

  constructor(config: SenderConfig, threads: number, private readonly batchSize: number, workerFile?: string, private readonly onCrash?: (err: unknown, jobs: number) => void) {
    // Vendor I/O is asynchronous: several batches run at once in a worker, so one slow vendor answer does not hold
    // every batch behind it and the window of pushes in flight is TASKS_PER_WORKER x batch size per worker.
    this.pool = new Piscina({
      filename: workerFile ?? defaultWorkerFile(), workerData: config, minThreads: threads, maxThreads: threads,
      idleTimeout: 60_000, concurrentTasksPerWorker: TASKS_PER_WORKER,
    });
  }

  run(job: PushJob): Promise<PushOutcome> {
    return new Promise((resolve) => {
      this.batch.push({ job, resolve });
      if (this.batch.length >= this.batchSize) this.flush();
      else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Sends what is queued and waits for every batch in flight. */
  async drain(): Promise<void> {
    this.flush();
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /**
   * Waits for the batches in flight at most `waitMs` (a vendor may take its whole request timeout to answer), then
   * stops the workers: what was still waiting for a vendor ends as `retry` (`sender worker failed`).
   */
  async destroy(waitMs = Infinity): Promise<void> {
    await within(this.drain(), waitMs, undefined);
    await this.pool.destroy();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.runTask(batch);
  }

  private runTask(batch: Pending[]): void {
    this.track(this.attempt(batch).then((crash) => {
      if (crash === undefined) return;
      // One poisoned job must not take its batch-mates down with it on every retry: rerun them one at a time.
      if (batch.length === 1) return batch[0].resolve(crashOutcome(crash));
      return this.isolate(batch);
    }));
  }

  /** Runs a batch; resolves its jobs, or returns the crash without resolving them. */
  private async attempt(batch: Pending[]): Promise<unknown> {
    this.batchesSent++;
    try {
      const outcomes = await this.pool.run(batch.map((p) => p.job));
      batch.forEach((p, i) => p.resolve(outcomes[i] ?? { outcome: 'failed', reason: 'worker returned no outcome' }));
      return undefined;
    } catch (err) {
      this.onCrash?.(err, batch.length);
      return err ?? new Error('worker failed');
    }
  }

  private async isolate(batch: Pending[]): Promise<void> {
    for (const p of batch) {
      const crash = await this.attempt([p]);
      if (crash !== undefined) p.resolve(crashOutcome(crash));
    }
  }

  private track(task: Promise<void>): void {
    const tracked: Promise<void> = task.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }
}

function crashOutcome(err: unknown): PushOutcome {
  return { outcome: 'retry', reason: `sender worker failed: ${err instanceof Error ? err.message : String(err)}` };
}

/** The compiled worker; under vitest the sources are .ts, so point at the build in dist/. */
function defaultWorkerFile(): string {
  const here = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (existsSync(here)) return here;
  const built = fileURLToPath(new URL('../dist/senders/worker.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`sender worker not found at ${here} or ${built}: run npm run build`);
}
