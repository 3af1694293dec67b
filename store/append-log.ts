import { open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { Packr } from 'msgpackr';

/** Frame header: u32 body length, u32 crc32 of the body (both little-endian). */
const HEADER_BYTES = 8;
/** A length above this is garbage, not a record: replay stops there instead of allocating it. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

// Plain maps, no shared record structures: every frame must decode on its own after the log is cut or truncated.
const packr = new Packr({ useRecords: false });

export interface AppendLogOptions {
  /** Bytes already in the file (from `AppendLog.replay`), so `bytes` counts the whole file. Default 0. */
  startBytes?: number;
  /** How a batch is made durable; replaceable so tests can inject disk failures. Default `fh.datasync()`. */
  datasync?: (file: FileHandle) => Promise<void>;
}

export interface ReplayReport {
  records: number;
  /** Length of the valid prefix; the file was truncated to it. */
  validBytes: number;
  /** Bytes of torn or corrupt tail that were cut off (0 for a clean log). */
  discardedBytes: number;
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
  private lazyTimer?: ReturnType<typeof setTimeout>;
  private flushing: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;
  private queuedBytes: number;
  private readonly datasync: (file: FileHandle) => Promise<void>;

  /** The file is opened (created if missing) lazily by the first flush, so constructing never blocks. */
  constructor(readonly path: string, options: AppendLogOptions = {}) {
    this.queuedBytes = options.startBytes ?? 0;
    this.datasync = options.datasync ?? ((f) => f.datasync());
  }

  /**
   * Reads every record in order and stops at the first torn or corrupt frame, truncating the file there so later
   * appends follow a clean record. Call before constructing the log on the same path. A missing file is empty.
   */
  static async replay<T>(path: string, visit: (record: T) => void): Promise<ReplayReport> {
    let data: Buffer;
    try {
      data = await readFile(path); // segments are bounded (inbox roll, registry compaction), so one read is fine
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: 0, validBytes: 0, discardedBytes: 0 };
      throw e;
    }
    let offset = 0;
    let records = 0;
    while (offset + HEADER_BYTES <= data.length) {
      const length = data.readUInt32LE(offset);
      const checksum = data.readUInt32LE(offset + 4);
      const end = offset + HEADER_BYTES + length;
      if (length > MAX_RECORD_BYTES || end > data.length) break;
      const body = data.subarray(offset + HEADER_BYTES, end);
      if (crc32(body) !== checksum) break;
      let record: T;
      try {
        record = packr.unpack(body) as T;
      } catch {
        break; // a matching crc over undecodable bytes: treat as corrupt all the same
      }
      visit(record);
      records++;
      offset = end;
    }
    const discardedBytes = data.length - offset;
    if (discardedBytes > 0) await truncateDurably(path, offset);
    return { records, validBytes: offset, discardedBytes };
  }

  /** Bytes in the file once every queued append is written; segment roll and compaction decide on it. */
  get bytes(): number {
    return this.queuedBytes;
  }

  /** True once a write or sync failed: nothing more is appended to this file (its tail is unknown). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Resolves once the record is written and fdatasync'ed; rejects if it may not be. */
  append(record: T): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`append log ${this.path} is closed`));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const frame = encodeFrame(record);
    this.queuedBytes += frame.length;
    return new Promise((resolve, reject) => {
      this.queue.push({ frame, resolve, reject });
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
    if (this.flushing !== undefined || this.lazyTimer !== undefined) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      if (this.queue.length > 0) this.flushing ??= this.flushLoop();
    }, LAZY_FLUSH_MS);
    this.lazyTimer.unref();
  }

  /** Waits for pending appends to settle, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.lazyTimer !== undefined) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    if (this.queue.length > 0) this.flushing ??= this.flushLoop();
    await this.flushing;
    await this.file?.close();
    this.file = undefined;
  }

  private async flushLoop(): Promise<void> {
    // One microtask first: appends made in the same synchronous run (a batch of accepts) join the first write.
    await Promise.resolve();
    try {
      while (this.queue.length > 0 && this.failure === undefined) {
        const batch = this.queue;
        this.queue = []; // appends arriving from here on form the next batch
        try {
          await this.writeAndSync(Buffer.concat(batch.map((p) => p.frame)));
        } catch (e) {
          // After a failed write or fsync the file's tail is unknown (fsyncgate): reject this batch and all later ones.
          this.failure = e;
          for (const p of batch) p.reject(e);
          break;
        }
        this.stats.records += batch.length;
        this.stats.syncs++;
        for (const p of batch) p.resolve();
      }
      const rest = this.queue;
      this.queue = [];
      for (const p of rest) p.reject(this.failure);
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeAndSync(data: Buffer): Promise<void> {
    if (this.file === undefined) {
      this.file = await open(this.path, 'a');
      await syncDirectory(dirname(this.path)); // a new file's directory entry must be durable too
    }
    let written = 0;
    while (written < data.length) {
      const { bytesWritten } = await this.file.write(data, written, data.length - written);
      written += bytesWritten;
    }
    await this.datasync(this.file);
  }
}

export function encodeFrame(record: unknown): Buffer {
  const body = packr.pack(record);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.writeUInt32LE(crc32(body), 4);
  body.copy(frame, HEADER_BYTES); // msgpackr may reuse its output buffer: copy before the next pack
  return frame;
}

/** fsync on a directory makes renames, creations and unlinks in it durable (Linux). */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function truncateDurably(path: string, length: number): Promise<void> {
  await truncate(path, length);
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
