import { statfs } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Clock, Timer } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';

/** The data dir's file system is read this often, ms: as often as StoreHealth probes and watches it. */
export const DEFAULT_FREE_SPACE_CHECK_MS = 1000;

/** The figures of `fs.statfs` the check reads: blocks free to an unprivileged user, and the block size in bytes. */
export type StatFs = (path: string) => Promise<{ bavail: number; bsize: number }>;

/** `fs.promises.statfs` (Node >= 18.15). */
export const systemStatFs: StatFs = (path) => statfs(path);

export interface FreeSpaceFloorOptions {
  dataDir: string;
  /** Bytes that must stay free on the data dir's file system for the node to call itself ready; 0 = never unready for space. */
  minFreeBytes: number;
  /** How the file system is read; tests inject figures. */
  statfs: StatFs;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  /** ms between reads. Default 1000. */
  intervalMs?: number;
}

/**
 * The embedded node's free-space floor, for `/readyz` only: StoreHealth learns of a full disk from a failed write,
 * when every accept is already answered 503; reading the free space turns the node unready before that, so a load
 * balancer moves traffic elsewhere while writes still succeed. Accepts are not refused for it: the durable write
 * decides. A read that fails (statfs error) keeps the last answer and is logged once per run of failures.
 */
export class FreeSpaceFloor {
  private below = false;
  private failing = false;
  private closed = false;
  private timer?: Timer;
  private readonly dir: string;
  private readonly intervalMs: number;

  constructor(private readonly options: FreeSpaceFloorOptions) {
    this.dir = resolve(options.dataDir);
    this.intervalMs = options.intervalMs ?? DEFAULT_FREE_SPACE_CHECK_MS;
  }

  /** True while the last successful read found fewer free bytes than `minFreeBytes`. */
  low(): boolean {
    return this.below;
  }

  /** Reads the free space now, then every `intervalMs` until `close()`; resolves after the first read. */
  async start(): Promise<void> {
    await this.read();
    this.schedule();
  }

  close(): void {
    this.closed = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      void this.read().then(() => this.schedule());
    }, this.intervalMs);
    // A check alone must not keep the process alive (the system clock's timers have unref; a test clock's need not).
    (this.timer as { unref?: () => void }).unref?.();
  }

  private async read(): Promise<void> {
    const { log, metrics, minFreeBytes } = this.options;
    let free: number;
    try {
      const s = await this.options.statfs(this.dir);
      free = s.bavail * s.bsize;
    } catch (e) {
      if (this.closed || this.failing) return;
      this.failing = true;
      const err = e as NodeJS.ErrnoException;
      log.warn({ dataDir: this.dir, code: err?.code, err: err?.message ?? String(e) }, 'cannot read the data dir\'s free space; readiness stays as it was');
      return;
    }
    if (this.closed) return;
    if (this.failing) log.info({ dataDir: this.dir }, 'the data dir\'s free space can be read again');
    this.failing = false;
    metrics.dataDirFreeBytes.set({ dir: this.dir }, free);
    const below = free < minFreeBytes;
    if (below && !this.below) {
      log.warn({ dataDir: this.dir, freeBytes: free, minFreeBytes }, 'data dir free space below the floor: /readyz answers 503 unready; accepts go on while writes succeed');
    } else if (!below && this.below) {
      log.info({ dataDir: this.dir, freeBytes: free, minFreeBytes }, 'data dir free space above the floor again: ready');
    }
    this.below = below;
  }
}
