import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { within } from '../base/within.js';
import { TokenSlot } from './apns-token-slot.js';
import type { PushJob, PushOutcome } from './types.js';
import type { SenderConfig } from './vendor-config.js';

/** Jobs per Piscina task: one job per task tops out near 28k tasks/s here, batches of 100 near 400k items/s. */
export const DEFAULT_BATCH_SIZE = 100;
/** Batches a worker runs at once (vendor I/O is asynchronous: they wait for their answers side by side). */
export const TASKS_PER_WORKER = 128;

/**
 * Batches of one push service (SERVICE key: an app's APNs, FCM or Push Kit, or one Web Push service host) in flight at
 * once, at most: a bulkhead. A service that hangs holds at most this many task slots until its request timeouts
 * (10 s APNs, 30 s the others) free them, and its further pushes wait in its own queue here, so every other
 * service keeps the rest of the workers' slots (with 16 slots in all and none per service, 16 pushes to one hung
 * Web Push endpoint held every other user's pushes, all vendors, for 29 s).
 */
export const TASKS_PER_SERVICE = 32;

/**
 * Pushes to one device (one push token) in flight at once, at most: a bulkhead inside a service. A subscription whose
 * push service holds its requests open (a Web Push endpoint that hangs while its host answers everyone else) takes at
 * most this many of its service's TASKS_PER_SERVICE slots, however many messages it is sent; the rest wait here.
 */
export const PUSHES_PER_DEVICE = 4;

/** What a push that never started answers when the pool stops (the pool then reports it failed as stopped). */
const STOPPED: PushOutcome = { outcome: 'retry', reason: 'sender pool stopped before this push was sent' };

interface Pending {
  job: PushJob;
  resolve: (o: PushOutcome) => void;
}

/** One push service's jobs waiting for a batch, and its batches in flight. */
interface ServiceQueue {
  waiting: Pending[];
  running: number;
  flushScheduled: boolean;
}

/**
 * One attempt of each push, run in Piscina workers in batches. A batch holds the pushes of one push service only
 * (a batch answers once its slowest push does, so a hung service must not hold other services' answers) and is
 * flushed when full or on the next turn of the event loop, so a lone push is not held back. A worker that dies
 * takes no job with it: the jobs of its batch come back as `retry`.
 */
export class BatchRunner {
  private readonly pool: Piscina<PushJob[], PushOutcome[]>;
  private readonly services = new Map<string, ServiceQueue>();
  /** By push token: attempts running, and those waiting for one of them to end (PUSHES_PER_DEVICE). */
  private readonly devices = new Map<string, { running: number; waiting: (() => void)[] }>();
  private readonly inFlight = new Set<Promise<void>>();
  private destroyed = false;
  /** Piscina tasks started; with batching far fewer than jobs. */
  batchesSent = 0;

  constructor(config: SenderConfig, threads: number, private readonly batchSize: number, workerFile?: string, private readonly onCrash?: (err: unknown, jobs: number) => void, private readonly tasksPerService = TASKS_PER_SERVICE) {
    // Vendor I/O is asynchronous: several batches run at once in a worker, so one slow vendor answer does not hold
    // every batch behind it and the window of pushes in flight is TASKS_PER_WORKER x batch size per worker.
    // `atomics: 'disabled'`: Piscina's default ('sync') stops a worker's event loop between tasks (Atomics.wait), so an
    // idle worker never read a vendor's close of a kept-alive connection, nor sent the APNs keep-alive ping, and the
    // next push went out on a dead socket (ECONNRESET: a `ttlSeconds: 0` push, one attempt only, was lost). Tasks
    // come over the MessagePort instead; batches of up to DEFAULT_BATCH_SIZE jobs keep that cost per push small.
    this.pool = new Piscina({
      filename: workerFile ?? defaultWorkerFile(), workerData: withTokenSlots(config), minThreads: threads, maxThreads: threads,
      idleTimeout: 60_000, concurrentTasksPerWorker: TASKS_PER_WORKER, atomics: 'disabled',
    });
  }

  /** Runs one attempt of `job` in a batch of `service`'s pushes (see TASKS_PER_SERVICE and PUSHES_PER_DEVICE). */
  async run(job: PushJob, service: string): Promise<PushOutcome> {
    let device = this.devices.get(job.token);
    if (device === undefined) this.devices.set(job.token, (device = { running: 0, waiting: [] }));
    if (device.running < PUSHES_PER_DEVICE) device.running++;
    else await new Promise<void>((resolve) => device.waiting.push(resolve)); // a slot handed over by an attempt that ended
    try {
      return this.destroyed ? STOPPED : await this.enqueue(job, service);
    } finally {
      if (!this.destroyed) {
        const next = device.waiting.shift();
        if (next) next();
        else if (--device.running === 0) this.devices.delete(job.token);
      }
    }
  }

  private enqueue(job: PushJob, service: string): Promise<PushOutcome> {
    return new Promise((resolve) => {
      let q = this.services.get(service);
      if (q === undefined) this.services.set(service, (q = { waiting: [], running: 0, flushScheduled: false }));
      q.waiting.push({ job, resolve });
      if (q.waiting.length >= this.batchSize) this.flush(service, q);
      else if (!q.flushScheduled) {
        q.flushScheduled = true;
        setImmediate(() => {
          q.flushScheduled = false;
          this.flush(service, q);
        });
      }
    });
  }

  /** Sends what is queued and waits for every batch in flight. */
  async drain(): Promise<void> {
    for (const [service, q] of this.services) this.flush(service, q);
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /**
   * Waits for the batches in flight at most `waitMs` (a vendor may take its whole request timeout to answer), then
   * stops the workers: what was still waiting for a vendor ends as `retry` (`sender worker failed`).
   */
  async destroy(waitMs = Infinity): Promise<void> {
    await within(this.drain(), waitMs, undefined);
    this.destroyed = true;
    await this.pool.destroy();
    // Jobs still queued behind their service's or their device's bulkhead never started: they end as `retry` too,
    // never unanswered.
    for (const q of this.services.values()) for (const p of q.waiting.splice(0)) p.resolve(STOPPED);
    for (const d of this.devices.values()) for (const wake of d.waiting.splice(0)) wake();
  }

  /** Starts batches of `service`'s waiting jobs while it has fewer than `tasksPerService` in flight. */
  private flush(service: string, q: ServiceQueue): void {
    while (!this.destroyed && q.waiting.length > 0 && q.running < this.tasksPerService) {
      const batch = q.waiting.splice(0, this.batchSize);
      q.running++;
      this.runTask(batch, () => {
        q.running--;
        if (q.waiting.length > 0) this.flush(service, q);
        else if (q.running === 0 && !q.flushScheduled) this.services.delete(service);
      });
    }
  }

  private runTask(batch: Pending[], finished: () => void): void {
    this.track(this.attempt(batch).then((crash) => {
      if (crash === undefined) return;
      // One poisoned job must not take its batch-mates down with it on every retry: rerun them one at a time.
      if (batch.length === 1) return batch[0].resolve(crashOutcome(crash));
      return this.isolate(batch);
    }).finally(finished));
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

/**
 * `config` with a shared APNs provider-token slot for each app that has APNs credentials (senders/apns-token-slot.ts):
 * the workers get one copy of the config each, and the slots in it are the same memory in all of them, so the
 * threads of one app send one token (Apple limits token renewals to one per 20 minutes).
 */
export function withTokenSlots(config: SenderConfig): SenderConfig {
  const apps: SenderConfig['apps'] = {};
  for (const [name, creds] of Object.entries(config.apps)) {
    apps[name] = creds.apns === undefined ? creds : { ...creds, apns: { ...creds.apns, tokenSlot: TokenSlot.create() } };
  }
  return { ...config, apps };
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
