import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, Timer } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { ReplayReport, WriteFailure } from './append-log.js';
import type { DataDirLock } from './data-dir-lock.js';

/** Which embedded store a report is about (the metric label). */
export type StoreName = 'inbox' | 'devices' | 'policies' | 'held' | 'decisions';

export const DEFAULT_PROBE_INTERVAL_MS = 1000;
export const DEFAULT_WATCH_INTERVAL_MS = 1000;
/** At most one write-failure line per store per this many ms; the rest are counted in `suppressed`. */
export const DEFAULT_FAILURE_LOG_EVERY_MS = 10_000;
const PROBE_FILE = '.write-probe';
const PROBE_BYTES = 4096;

export interface StoreHealthOptions {
  dataDir: string;
  log: Logger;
  metrics: Metrics;
  clock: Clock;
  /** While writes fail, a small write + fdatasync in the data dir is tried this often. Default 1000. */
  probeIntervalMs?: number;
  /** The data dir lock is checked this often (deleted or replaced dir). Default 1000. */
  watchIntervalMs?: number;
  /** Default 10000. */
  failureLogEveryMs?: number;
}

/**
 * Whether the embedded node can make accepts durable (issue 8 part 5), for `/readyz` and the accept path: false
 * after a store write failed, until a probe write in the data dir succeeds again (disk full, then space freed); false
 * for good once the data dir was deleted or replaced under the node (one error line says why). Write failures are
 * counted and logged rate-limited; replay damage is logged at `error` with the file, offsets and bytes skipped.
 */
export class StoreHealth {
  private writable = true;
  private lost: string | undefined;
  private probeTimer?: Timer;
  private watchTimer?: Timer;
  private closed = false;
  private readonly lastLogAt = new Map<StoreName, number>();
  private readonly suppressed = new Map<StoreName, number>();
  private failuresSinceWritable = 0;
  private readonly probeIntervalMs: number;
  private readonly watchIntervalMs: number;
  private readonly failureLogEveryMs: number;

  constructor(private readonly options: StoreHealthOptions) {
    this.probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.watchIntervalMs = options.watchIntervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
    this.failureLogEveryMs = options.failureLogEveryMs ?? DEFAULT_FAILURE_LOG_EVERY_MS;
    options.metrics.storeDurable.set(1);
  }

  /** True while accepts can be made durable. */
  durable(): boolean {
    return this.writable && this.lost === undefined;
  }

  /** Why accepts cannot be made durable, or undefined. */
  reason(): string | undefined {
    return this.lost ?? (this.writable ? undefined : 'store writes are failing');
  }

  /** A batch of `store` failed to write or sync (AppendLog `onWriteFailure`): unready until a probe write succeeds. */
  writeFailed(store: StoreName, failure: WriteFailure): void {
    this.failuresSinceWritable++;
    this.report(store, failure, failure.cut ? 'store write failed; the failed records were cut off and answered 503' : 'store write failed and could not be cut off; this file takes no more writes');
    if (this.writable) {
      this.writable = false;
      this.update();
      this.scheduleProbe();
    }
  }

  /**
   * A write of a store whose loss costs no message failed (the decision log: its decisions stay in memory): counted
   * and logged like any write failure (at most once per `failureLogEveryMs` per store), readiness unchanged.
   */
  sideWriteFailed(store: StoreName, failure: WriteFailure): void {
    this.report(store, failure, 'store write failed; no message depends on it (the records stay in memory)');
  }

  private report(store: StoreName, failure: WriteFailure, what: string): void {
    const { log, metrics, clock } = this.options;
    metrics.storeWriteFailures.inc({ store, cut: String(failure.cut) });
    const now = clock.now();
    const last = this.lastLogAt.get(store);
    if (last === undefined || now - last >= this.failureLogEveryMs) {
      const err = failure.error as NodeJS.ErrnoException;
      log.error(
        { store, file: failure.path, code: err?.code, err: err?.message ?? String(err), cut: failure.cut, suppressed: this.suppressed.get(store) ?? 0 },
        what,
      );
      this.lastLogAt.set(store, now);
      this.suppressed.set(store, 0);
    } else {
      this.suppressed.set(store, (this.suppressed.get(store) ?? 0) + 1);
    }
  }

  /** A replay of `store` found damage or a torn tail (AppendLog.replay's report for `file`). */
  damaged(store: StoreName, file: string, report: ReplayReport): void {
    const { log, metrics } = this.options;
    if (report.damage.length > 0) {
      metrics.storeDamage.inc({ store, kind: 'corrupt' }, report.damage.length);
      log.error(
        { store, file, damage: report.damage.map((d) => ({ offset: d.offset, bytesSkipped: d.bytes })), keptAs: report.keptAs, recordsKept: report.records },
        'store file damaged: skipped the damaged bytes and kept the records around them; the file as found was kept aside',
      );
    }
    if (report.tornTailBytes > 0) {
      metrics.storeDamage.inc({ store, kind: 'torn_tail' });
      log.warn({ store, file, offset: report.validBytes, bytesSkipped: report.tornTailBytes }, 'store file ended in a torn write; cut it off');
    }
    if (report.discardedBytes > 0) metrics.storeDamagedBytes.inc({ store }, report.discardedBytes);
  }

  /** Checks the data dir lock every `watchIntervalMs`; a deleted or replaced data dir makes the node unready for good. */
  watch(lock: DataDirLock): void {
    const tick = (): void => {
      this.watchTimer = undefined;
      void lock.check().then((why) => {
        if (this.closed) return;
        if (why !== undefined) return this.markLost(why);
        this.watchTimer = this.options.clock.setTimeout(tick, this.watchIntervalMs);
      });
    };
    this.watchTimer = this.options.clock.setTimeout(tick, this.watchIntervalMs);
  }

  /** The data dir can no longer be trusted (deleted or replaced): accepts are refused until a restart. */
  markLost(why: string): void {
    if (this.lost !== undefined) return;
    this.lost = why;
    this.update();
    this.options.log.error({ dataDir: this.options.dataDir }, `${why}: refusing messages (503) until restarted on a data dir`);
  }

  close(): void {
    this.closed = true;
    if (this.probeTimer) this.options.clock.clearTimeout(this.probeTimer);
    if (this.watchTimer) this.options.clock.clearTimeout(this.watchTimer);
    this.probeTimer = this.watchTimer = undefined;
  }

  private update(): void {
    this.options.metrics.storeDurable.set(this.durable() ? 1 : 0);
  }

  private scheduleProbe(): void {
    if (this.closed || this.probeTimer) return;
    this.probeTimer = this.options.clock.setTimeout(() => {
      this.probeTimer = undefined;
      void probeWrite(this.options.dataDir).then((ok) => {
        if (this.closed) return;
        if (!ok) return this.scheduleProbe();
        this.writable = true;
        this.update();
        this.options.log.info({ failures: this.failuresSinceWritable }, 'store writable again');
        this.failuresSinceWritable = 0;
      });
    }, this.probeIntervalMs);
  }
}

/** A small write + fdatasync + unlink in the data dir: true when the disk takes writes again. */
async function probeWrite(dataDir: string): Promise<boolean> {
  const path = join(dataDir, PROBE_FILE);
  try {
    const handle = await open(path, 'w');
    try {
      await handle.write(Buffer.alloc(PROBE_BYTES));
      await handle.datasync();
    } finally {
      await handle.close();
    }
    return true;
  } catch {
    return false;
  } finally {
    await unlink(path).catch(() => undefined);
  }
}
