import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { privateDir } from './private-dir.js';
import { AppendLog, syncDirectory, type AppendLogOptions, type ReplayReport } from './append-log.js';

/**
 * Log record: decisions as they were packed, `[user, packed, user, packed, …]` flat (one array, no object per
 * decision). The packed strings are opaque here (actors/decision-pack.ts writes and reads them).
 */
export interface DecisionLogRecord {
  d: string[];
}

export interface FileDecisionLogOptions {
  /** How often the decisions packed meanwhile are written, ms. Default DECISION_FLUSH_MS. */
  flushMs?: number;
  /** Decisions read back per user at most (the history keeps fewer). Default 100. */
  perUser?: number;
  /**
   * The log is rewritten as a snapshot of the live history once it is larger than this many bytes and than twice
   * the last snapshot. Default DECISION_COMPACT_MIN_BYTES.
   */
  compactMinBytes?: number;
  /** Passed to the log; tests inject disk failures with it. Default: the log's own (`O_DSYNC`). */
  datasync?: AppendLogOptions['datasync'];
  /**
   * A write, a snapshot or its rename failed: those decisions are missing from disk (memory keeps them). For a
   * warning and a metric; no message is refused for it (StoreHealth.sideWriteFailed).
   */
  onWriteFailure?: AppendLogOptions['onWriteFailure'];
  /** The replay at open found damage or a torn tail in `decisions.log`. For store health. */
  onDamage?: (file: string, report: ReplayReport) => void;
}

/** Where a snapshot comes from: every user's packed decisions, oldest first (DecisionHistory.packedEntries). */
export interface DecisionSnapshotSource {
  entries(): Iterable<[user: string, packed: string[]]>;
}

const LOG_FILE = 'decisions.log';
const SNAPSHOT_TMP = 'decisions.log.tmp';
/** Decisions packed meanwhile are written this often: at most this much of the trail is lost to `kill -9`. */
export const DECISION_FLUSH_MS = 200;
/** Bytes: a log smaller than this is never compacted (16 MiB, ~400,000 typical decisions). */
export const DECISION_COMPACT_MIN_BYTES = 16 * 1024 * 1024;
/** Ms after a failed compaction before the next try (appends go on meanwhile). */
export const COMPACT_RETRY_MS = 60_000;
/**
 * Decisions per record at most: ~12 KiB for typical ones, so a damaged record (a bad checksum costs its whole record)
 * loses at most 256 decisions, not a whole flush; and under the log's 16 MiB frame limit even for the largest (a user
 * id of 128 chars and a decision of 255 targets with vendor details, ~70 KiB), as a record also stops at RECORD_CHARS.
 */
const RECORD_DECISIONS = 256;
/** UTF-16 code units per record at most (4 Mi: at most ~8 MiB of MessagePack, as a char may take 2 bytes). */
const RECORD_CHARS = 4 * 1024 * 1024;

/**
 * The embedded node's decision history on disk (PROTOCOL.md section 3, `GET …/decisions`: "at least the last 100
 * decisions are kept"), so a restart, graceful or `kill -9`, keeps the trail. Write-behind: each packed decision is
 * buffered and the buffer written every DECISION_FLUSH_MS as one group commit (`O_DSYNC`, off the hot path; a
 * decision is bookkeeping, never a reason to answer a send later). The file only grows, so once it is larger than
 * DECISION_COMPACT_MIN_BYTES and twice the last snapshot, the history is written as a snapshot to a temp file, synced
 * and renamed over the log (the policy store's compaction, here while running); decisions packed meanwhile follow it.
 *
 * What it costs: one array push per decision on the hot path, one group commit per flush (bench/README.md, "A ninth
 * VM": no difference side by side).
 */
export class FileDecisionLog {
  /** Snapshots that replaced the log since open (for tests and the curious). */
  readonly stats = { compactions: 0 };
  private pending: string[] = [];
  private timer?: ReturnType<typeof setInterval>;
  private source?: DecisionSnapshotSource;
  /** A write or a compaction under way; the next flush waits for it (one at a time keeps the file in order). */
  private busy: Promise<void> | undefined;
  private closed = false;
  private readonly compactMinBytes: number;
  /** The file is compacted past this size: twice the last snapshot, at least compactMinBytes. */
  private compactAtBytes: number;
  /** Epoch ms before which no compaction is tried again (one just failed). */
  private compactNotBefore = 0;

  private constructor(
    private readonly dir: string,
    private log: AppendLog<DecisionLogRecord>,
    private restoredHistories: Map<string, string[]> | undefined,
    private readonly options: FileDecisionLogOptions,
  ) {
    this.compactMinBytes = options.compactMinBytes ?? DECISION_COMPACT_MIN_BYTES;
    this.compactAtBytes = this.compactMinBytes;
  }

  /** Opens (or creates) `dir/decisions.log` and reads it back (`restored`); a compaction cut short is discarded. */
  static async open(dir: string, options: FileDecisionLogOptions = {}): Promise<FileDecisionLog> {
    await privateDir(dir);
    const path = join(dir, LOG_FILE);
    await rm(join(dir, SNAPSHOT_TMP), { force: true });
    const perUser = options.perUser ?? 100;
    const histories = new Map<string, string[]>();
    const report = await AppendLog.replay<DecisionLogRecord>(path, (r) => {
      const d = Array.isArray(r?.d) ? r.d : [];
      for (let i = 0; i + 1 < d.length; i += 2) {
        const user = d[i];
        const packed = d[i + 1];
        if (typeof user !== 'string' || typeof packed !== 'string') continue;
        let list = histories.get(user);
        if (list === undefined) histories.set(user, (list = []));
        list.push(packed);
        // Bounded while reading: a long log of one busy user keeps its newest few hundred, not all of them.
        if (list.length > 4 * perUser) list.splice(0, list.length - 2 * perUser);
      }
    });
    if (report.discardedBytes > 0) options.onDamage?.(path, report);
    const log = appendLogAt(path, report.validBytes, options);
    const decisionLog = new FileDecisionLog(dir, log, histories, options);
    decisionLog.timer = setInterval(() => decisionLog.flush(), options.flushMs ?? DECISION_FLUSH_MS);
    decisionLog.timer.unref();
    return decisionLog;
  }

  /**
   * What the log held at open, per user in log order (the newest few hundred per user at most); handed out once,
   * then forgotten (`DecisionHistory.restore` keeps what it needs).
   */
  restored(): Map<string, string[]> {
    const histories = this.restoredHistories ?? new Map<string, string[]>();
    this.restoredHistories = undefined;
    return histories;
  }

  /** Where compaction takes its snapshot from (the node's DecisionHistory); without one the log is never compacted. */
  snapshotFrom(source: DecisionSnapshotSource): void {
    this.source = source;
  }

  /** A decision just packed (the history's DecisionSink): written with the next flush. */
  add(user: string, packed: string): void {
    if (this.closed) return;
    this.pending.push(user, packed);
  }

  /** Bytes in the file once the writes under way are done. */
  get bytes(): number {
    return this.log.bytes;
  }

  /**
   * Writes what was added since the last flush; resolves once written (or given up: see onWriteFailure). A flush
   * asked for while another is under way (the write-behind timer's) writes after it what came since: it used to
   * resolve with the one under way, before the decisions added meanwhile were on disk.
   */
  flush(): Promise<void> {
    if (this.busy !== undefined) return this.busy.then(() => this.flush());
    if (this.pending.length === 0) return Promise.resolve();
    const work = this.compactDue() ? this.compact() : this.write();
    const busy = work.finally(() => {
      if (this.busy === busy) this.busy = undefined;
    });
    this.busy = busy;
    return busy;
  }

  /** Writes what is buffered and closes the file; `add`s from here on are dropped (the node stops routing first). */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.busy;
    await this.flush();
    this.closed = true;
    await this.log.close();
  }

  private write(): Promise<void> {
    const records = chunked(this.pending);
    this.pending = [];
    // One group commit for them all. A failed write is reported by the log (onWriteFailure); memory keeps these
    // decisions, only their copy on disk is lost.
    try {
      return Promise.all(records.map((r) => this.log.append(r))).then(() => undefined, () => undefined);
    } catch (e) {
      // `append` throws for a record over the frame limit, which `chunked` rules out; a timer must not crash the node.
      this.options.onWriteFailure?.({ path: join(this.dir, LOG_FILE), error: e, cut: true });
      return Promise.resolve();
    }
  }

  private compactDue(): boolean {
    return this.source !== undefined && this.log.bytes > this.compactAtBytes && Date.now() >= this.compactNotBefore;
  }

  /**
   * Rewrites the log as the history stands now. The snapshot is taken synchronously (references to the packed
   * strings, ~8 bytes per decision), so what was buffered before it is in it and what is packed after it follows it;
   * it is then encoded and written one record at a time, each awaited, so routing goes on between records and only
   * one record's bytes are in memory. A failure leaves the old log, appends the buffered decisions to it, and waits
   * COMPACT_RETRY_MS before trying again.
   */
  private async compact(): Promise<void> {
    const flat: string[] = [];
    for (const [user, packed] of this.source!.entries()) for (const p of packed) flat.push(user, p);
    const carried = this.pending;
    this.pending = [];
    const path = join(this.dir, LOG_FILE);
    const tmp = join(this.dir, SNAPSHOT_TMP);
    const snapshot = new AppendLog<DecisionLogRecord>(tmp, { datasync: this.options.datasync });
    try {
      await (await open(tmp, 'w')).close(); // the file exists even when the history is empty
      for (const record of chunked(flat)) await snapshot.append(record);
      await snapshot.close();
    } catch (e) {
      await snapshot.close().catch(() => undefined);
      await rm(tmp, { force: true }).catch(() => undefined);
      return this.keepOldLog(tmp, e, carried);
    }
    await this.log.close().catch(() => undefined);
    try {
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      this.log = appendLogAt(path, this.log.bytes, this.options);
      return this.keepOldLog(path, e, carried);
    }
    // The rename stands even if its directory entry is not synced yet: a crash then leaves the old log, also whole.
    await syncDirectory(this.dir).catch((e: unknown) => this.options.onWriteFailure?.({ path, error: e, cut: true }));
    this.compactAtBytes = Math.max(this.compactMinBytes, 2 * snapshot.bytes);
    this.stats.compactions++;
    this.log = appendLogAt(path, snapshot.bytes, this.options);
  }

  /**
   * A compaction failed at `path`: reported, not tried again for COMPACT_RETRY_MS, and what was buffered when its
   * snapshot was taken goes to the old log, ahead of what was packed meanwhile.
   */
  private keepOldLog(path: string, error: unknown, carried: string[]): Promise<void> {
    this.options.onWriteFailure?.({ path, error, cut: true });
    this.compactNotBefore = Date.now() + COMPACT_RETRY_MS;
    this.pending = carried.concat(this.pending);
    return this.write();
  }
}

/** The log the decisions are appended to, `startBytes` already in the file (after a replay or a snapshot). */
function appendLogAt(path: string, startBytes: number, options: FileDecisionLogOptions): AppendLog<DecisionLogRecord> {
  return new AppendLog<DecisionLogRecord>(path, { startBytes, datasync: options.datasync, onWriteFailure: options.onWriteFailure });
}

/** `[user, packed, …]` cut into records of at most RECORD_DECISIONS decisions and about RECORD_CHARS characters. */
function chunked(flat: string[]): DecisionLogRecord[] {
  const records: DecisionLogRecord[] = [];
  let start = 0;
  let chars = 0;
  for (let i = 0; i < flat.length; i += 2) {
    chars += flat[i].length + flat[i + 1].length;
    if (i + 2 - start >= 2 * RECORD_DECISIONS || chars >= RECORD_CHARS) {
      records.push({ d: flat.slice(start, i + 2) });
      start = i + 2;
      chars = 0;
    }
  }
  if (start < flat.length) records.push({ d: flat.slice(start) });
  return records;
}
