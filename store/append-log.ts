import { constants, fstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { HEADER_BYTES, MAX_RECORD_BYTES, packr, replayLog, syncDirectory, writeAll, type ReplayOptions, type ReplayReport } from './log-replay.js';

export { MAX_RECORD_BYTES, syncDirectory, type LogDamage, type ReplayReport } from './log-replay.js';

/** `O_DSYNC` where the platform has it (Linux, macOS); Windows has none. */
const O_DSYNC: number | undefined = (constants as { O_DSYNC?: number }).O_DSYNC;

/** What became of a batch whose write or fdatasync failed (its appends are rejected either way). */
export interface WriteFailure {
  path: string;
  error: unknown;
  /** True when the failed bytes were cut off again (ftruncate to the last synced size + fsync): the log goes on. */
  cut: boolean;
}

export interface AppendLogOptions {
  /** Bytes already in the file (from `AppendLog.replay`), so `bytes` counts the whole file. Default 0. */
  startBytes?: number;
  /**
   * How a batch is made durable; replaceable so tests can inject disk failures. Default: the file is opened with
   * `O_DSYNC`, so each batch's one `write` returns once its data is on disk (PostgreSQL's `open_datasync`); where the
   * platform has no `O_DSYNC`, `fh.datasync()` after the write.
   */
  datasync?: (file: FileHandle) => Promise<void>;
  /** Called once per failed batch, after the cut was tried (store health: log, metric, readiness). */
  onWriteFailure?: (failure: WriteFailure) => void;
  /** Called once per batch made durable (metrics: how long the disk takes, how many records share a sync). */
  onSynced?: (sync: SyncReport) => void;
}

/**
 * One batch made durable. `ms` is the wall time of its `write` (`O_DSYNC`) or write + fdatasync, measured on the
 * monotonic clock: the disk's share of an accept's latency, which no setting of ours shortens.
 */
export interface SyncReport {
  path: string;
  /** Records in the batch: the appends waiting for it and the lazy records riding along. */
  records: number;
  bytes: number;
  /** Wall time of the write and sync, ms. */
  ms: number;
}

/** Counters exposed so tests and benchmarks can see group commit at work. */
export interface AppendLogStats {
  records: number;
  /** write + fdatasync rounds; far fewer than `records` under concurrent load. */
  syncs: number;
}

interface PendingAppend {
  frame: Buffer;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Longest a lazily appended record waits for a synced batch to carry it. */
export const LAZY_FLUSH_MS = 200;

/**
 * A checksummed append-only file of msgpack records with group commit: appends that arrive while a write+fdatasync
 * is in flight are batched into the next single write+fdatasync. `append` resolves only once its bytes are synced.
 */
export class AppendLog<T> {
  readonly stats: AppendLogStats = { records: 0, syncs: 0 };
  private file: FileHandle | undefined;
  private queue: PendingAppend[] = [];
  /** Appends in `queue` that wait for durability (not lazy): a batch of lazy records alone waits for the timer. */
  private eager = 0;
  /** Set by the lazy timer and by close: write the queue even if it holds only lazy records. */
  private flushLazy = false;
  private lazyTimer?: ReturnType<typeof setTimeout>;
  private flushing: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;
  private queuedBytes: number;
  /** File size after the last successful write + fdatasync: where a failed batch is cut back to. */
  private syncedBytes: number;
  /** Undefined: the file is opened `O_DSYNC` and a write is durable when it returns. */
  private readonly datasync: ((file: FileHandle) => Promise<void>) | undefined;
  private readonly onWriteFailure?: (failure: WriteFailure) => void;
  private readonly onSynced?: (sync: SyncReport) => void;

  /** The file is opened (created if missing) lazily by the first flush, so constructing never blocks. */
  constructor(readonly path: string, options: AppendLogOptions = {}) {
    this.queuedBytes = options.startBytes ?? 0;
    this.syncedBytes = this.queuedBytes;
    this.datasync = options.datasync ?? (O_DSYNC === undefined ? (f) => f.datasync() : undefined);
    this.onWriteFailure = options.onWriteFailure;
    this.onSynced = options.onSynced;
  }

  /**
   * Reads every valid record in order; damage in the middle costs only the damaged frames and a torn tail is cut
   * (see `replayLog` in log-replay.ts). Call before constructing the log on the same path.
   */
  static replay<T>(path: string, visit: (record: T, offset: number, length: number) => void, options?: ReplayOptions): Promise<ReplayReport> {
    return replayLog(path, visit, options);
  }

  /** Bytes in the file once every queued append is written; segment roll and compaction decide on it. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /**
   * True once a write or sync failed and the failed bytes could not be cut off: nothing more is appended to this
   * file (its tail is unknown). A failure that was cut off leaves the log usable (disk full, then space freed).
   */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Resolves once the record is written and fdatasync'ed; rejects if it may not be (log closed or failed, the write or
   * sync failed). Throws, synchronously, `encodeFrame`'s RangeError for a record over MAX_RECORD_BYTES.
   */
  append(record: T): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`append log ${this.path} is closed`));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const frame = encodeFrame(record);
    this.queuedBytes += frame.length;
    return this.enqueue(frame);
  }

  private enqueue(frame: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ frame, resolve, reject });
      this.eager++;
      this.flushing ??= this.flushLoop();
    });
  }

  /**
   * Queues a record whose durability can wait: it is written with the next synced batch, or within LAZY_FLUSH_MS.
   * For bookkeeping whose loss in a crash is harmless (an inbox `settled` record: one more delivery after restart),
   * so a lone message costs one fdatasync, not two.
   */
  appendLazy(record: T): void {
    if (this.closed || this.failure !== undefined) return;
    const frame = encodeFrame(record);
    this.queuedBytes += frame.length;
    this.queue.push({ frame, resolve: () => {}, reject: () => {} });
    this.armLazyTimer();
  }

  /** Lazy records never start a write of their own before LAZY_FLUSH_MS: they ride with the next synced batch. */
  private armLazyTimer(): void {
    if (this.lazyTimer !== undefined || this.closed) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      if (this.queue.length === 0) return;
      this.flushLazy = true;
      this.flushing ??= this.flushLoop();
    }, LAZY_FLUSH_MS);
    this.lazyTimer.unref();
  }

  /** Waits for pending appends to settle, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.lazyTimer !== undefined) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    this.flushLazy = true;
    if (this.queue.length > 0) this.flushing ??= this.flushLoop();
    await this.flushing;
    await this.file?.close();
    this.file = undefined;
  }

  private async flushLoop(): Promise<void> {
    // One microtask first: appends made in the same synchronous run (a batch of accepts) join the first write.
    await Promise.resolve();
    try {
      while (this.queue.length > 0 && this.failure === undefined && (this.eager > 0 || this.flushLazy)) {
        const batch = this.queue;
        this.queue = []; // appends arriving from here on form the next batch
        this.eager = 0;
        this.flushLazy = this.closed;
        const data = Buffer.concat(batch.map((p) => p.frame));
        const started = performance.now();
        try {
          await this.writeAndSync(data);
        } catch (e) {
          // A record answered "failed" must never be replayed: cut the batch off again. After a failed fdatasync
          // the unsynced pages are unknown (fsyncgate), but truncating to the synced size and fsyncing leaves a
          // known file. If even that fails, the tail stays unknown and the log refuses every later append.
          const cut = await this.cutBack();
          if (!cut) this.failure = e;
          this.queuedBytes -= data.length;
          for (const p of batch) p.reject(e);
          this.onWriteFailure?.({ path: this.path, error: e, cut });
          continue;
        }
        this.syncedBytes += data.length;
        this.stats.records += batch.length;
        this.stats.syncs++;
        this.onSynced?.({ path: this.path, records: batch.length, bytes: data.length, ms: performance.now() - started });
        for (const p of batch) p.resolve();
      }
      if (this.failure === undefined) {
        if (this.queue.length > 0) this.armLazyTimer(); // only lazy records are left: they wait for company or the timer
      } else {
        const rest = this.queue;
        this.queue = [];
        this.eager = 0;
        for (const p of rest) p.reject(this.failure);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Truncates the file back to its last synced size; true when that is durable. */
  private async cutBack(): Promise<boolean> {
    if (this.file === undefined) return true; // never opened: nothing was written
    try {
      await this.file.truncate(this.syncedBytes);
      await this.file.sync();
      return true;
    } catch {
      return false;
    }
  }

  private async writeAndSync(data: Buffer): Promise<void> {
    if (this.file === undefined) {
      const file = await open(this.path, this.datasync === undefined ? constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | O_DSYNC! : 'a');
      try {
        this.syncedBytes = (await file.stat()).size; // what is on disk, whatever `startBytes` said
        await syncDirectory(dirname(this.path)); // a new file's directory entry must be durable too
      } catch (e) {
        await file.close().catch(() => undefined);
        throw e;
      }
      this.file = file;
    }
    // A file unlinked under us (data dir deleted) still takes writes; they would vanish at the next restart. The
    // check is an `fstat` on this thread once the write is through: it reads the open file's in-memory inode (no disk
    // I/O on a local file system, ~2 µs; the README asks for a local data dir), and it also sees an unlink
    // that came during the write. It used to be a second thread-pool request beside the write, and a trip to the pool
    // is what a group commit costs most (issue 13: with 8 writers, 30-48 -> 19-28 µs of CPU per append on a 2-core VM,
    // bench/README.md "A slower VM, and one trip to the thread pool per group commit").
    const file = this.file;
    await (this.datasync === undefined ? writeAll(file, data) : writeAll(file, data).then(() => this.datasync!(file)));
    const stat = fstatSync(file.fd);
    if (stat.nlink === 0) throw Object.assign(new Error(`${this.path} was deleted`), { code: 'ENOENT' });
  }
}

/**
 * One frame: [u32 body length][u32 crc32 of the body][body], little-endian, the body `record` as MessagePack with no
 * shared record structures (`packr`, `useRecords: false`): the format `replayLog` reads. Throws a RangeError when the
 * body is over MAX_RECORD_BYTES (16 MiB): replay would take such a frame for garbage, so it must never be written.
 */
export function encodeFrame(record: unknown): Buffer {
  const body = checkedBody(packr.pack(record));
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  putFrame(frame, 0, body);
  return frame;
}

/** Writes `body` as one frame into `out` at `at` (room checked by the caller); returns where the frame ends. */
function putFrame(out: Buffer, at: number, body: Uint8Array): number {
  out.writeUInt32LE(body.length, at);
  out.writeUInt32LE(crc32(body), at + 4);
  out.set(body, at + HEADER_BYTES); // msgpackr may reuse its output buffer: copy before the next pack
  return at + HEADER_BYTES + body.length;
}

/** `body` if replay would read it back (at most MAX_RECORD_BYTES), else a RangeError. */
function checkedBody(body: Buffer): Buffer {
  if (body.length > MAX_RECORD_BYTES) throw new RangeError(`a log record of ${body.length} bytes is over the ${MAX_RECORD_BYTES}-byte limit`);
  return body;
}
