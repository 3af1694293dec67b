import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { SwitchboardError, type ChatMessage } from '../protocol/index.js';
import { privateDir } from './private-dir.js';
import { AppendLog, syncDirectory, type AppendLogOptions, type ReplayReport } from './append-log.js';
import { emptyReadState, fromRecord, isEmptyReadState, markDelivered, markRead, toRecord } from './read-state.js';
import type { HeldMessage, HeldStore, ReadChange, ReadState } from './types.js';

export const DEFAULT_HELD_COMPACT_MIN_BYTES = 4 * 1024 * 1024;
/**
 * A log that failed for good (a failed fdatasync whose bytes could not be cut off: its tail is unknown) is replaced
 * by a snapshot of what memory holds, tried at the next write and then at most once per this many ms while the
 * disk keeps failing.
 */
export const HELD_RECOVERY_INTERVAL_MS = 1000;

export interface FileHeldStoreOptions {
  /** The log is rewritten once it is larger than this and more than twice the live records. Default 4 MiB. */
  compactMinBytes?: number;
  /** Epoch ms, for dropping expired messages at compaction and spacing recovery attempts. Default `Date.now`. */
  now?: () => number;
  /** Passed to the log; tests inject disk failures with it. Default fdatasync. */
  datasync?: AppendLogOptions['datasync'];
  /** A write failed (the hold rejected, answered by a retry). For store health. */
  onWriteFailure?: AppendLogOptions['onWriteFailure'];
  /** A batch of holds, drops and read marks in `held.log` is durable. For the sync metrics. */
  onSynced?: AppendLogOptions['onSynced'];
  /** The replay at open found damage or a torn tail in `held.log`. For store health. */
  onDamage?: (file: string, report: ReplayReport) => void;
}

/** Log records. A snapshot writes one `hold` per held message and one `reads` per user with a read state. */
export type HeldLogRecord =
  | { t: 'hold'; user: string; msg: ChatMessage; exp: number }
  | { t: 'drop'; user: string; ids: string[] }
  /** One delivery's unread mark (written by earlier versions; still read). */
  | { t: 'unread'; user: string; id: string }
  /** The unread marks of one event-loop turn, in delivery order: `users[i]` got `ids[i]`. */
  | { t: 'unreads'; users: string[]; ids: string[] }
  | { t: 'read'; user: string; ids: string[] }
  | { t: 'reads'; user: string; unread: string[]; read: string[] };

/**
 * Where a held message's record lies in the log: only this stays in memory, the message itself is read back from
 * the file when the user's backlog is replayed (1M held messages cost tens of MB, not their bodies' size).
 * `msg` is kept only until the record is durable, so a list() racing a hold() never reads unwritten bytes.
 */
interface HeldEntry {
  off: number;
  len: number;
  exp: number;
  at: number;
  msg: ChatMessage | undefined;
}

const LOG_FILE = 'held.log';
const SNAPSHOT_TMP = 'held.log.tmp';
const packr = new Packr({ useRecords: false });
/** Frame header of an AppendLog record (length + crc32); the body follows. */
const HEADER_BYTES = 8;

/**
 * Embedded held messages and read states in `held.log` in the data dir: the inbox's guarantees (checksummed
 * records, group-committed fdatasync, a torn tail cut at replay), memory holding only offsets. A hold resolves
 * once its record is synced, so the inbox is told `done` only after the message is durable here.
 */
export class FileHeldStore implements HeldStore {
  private readonly users = new Map<string, Map<string, HeldEntry>>();
  private readonly readStates = new Map<string, ReadState>();
  private log: AppendLog<HeldLogRecord>;
  /**
   * The read handle of held.log, opened by the first read: the promise is kept, not the handle, so reads that start
   * together share one open (two opens raced, and the handle that lost was left to the garbage collector).
   */
  private reader: Promise<FileHandle> | undefined;
  private compaction: Promise<void> | undefined;
  private deferred: { record: HeldLogRecord; entry?: HeldEntry; resolve: () => void; reject: (e: unknown) => void }[] | undefined;
  /** Unread marks of this turn, written as one lazy `unreads` record (issue 13: one record per delivery was 2-3% of the node's CPU). */
  private marks: { users: string[]; ids: string[] } | undefined;
  private total = 0;
  private closed = false;
  /** When the last snapshot meant to replace a failed log started (epoch ms); see HELD_RECOVERY_INTERVAL_MS. */
  private lastRecovery = -Infinity;
  private readonly compactMinBytes: number;
  private readonly now: () => number;

  private readonly onWriteFailure: FileHeldStoreOptions['onWriteFailure'];
  private readonly onSynced: FileHeldStoreOptions['onSynced'];
  private readonly datasync: FileHeldStoreOptions['datasync'];

  private constructor(readonly dir: string, startBytes: number, options: FileHeldStoreOptions) {
    this.onWriteFailure = options.onWriteFailure;
    this.onSynced = options.onSynced;
    this.datasync = options.datasync;
    this.log = this.newLog(startBytes);
    this.compactMinBytes = options.compactMinBytes ?? DEFAULT_HELD_COMPACT_MIN_BYTES;
    this.now = options.now ?? Date.now;
  }

  static async open(dir: string, options: FileHeldStoreOptions = {}): Promise<FileHeldStore> {
    await privateDir(dir);
    await rm(join(dir, SNAPSHOT_TMP), { force: true }); // a compaction cut short before its rename
    const path = join(dir, LOG_FILE);
    let store = new FileHeldStore(dir, 0, options);
    // Applied as they are read: only offsets stay, each message body is garbage as soon as it is indexed.
    let report = await AppendLog.replay<HeldLogRecord>(path, (r, off, len) => store.apply(r, off, len));
    if (report.discardedBytes > 0) options.onDamage?.(path, report);
    if (report.damage.length > 0) {
      // The damaged stretch was cut out and the file rewritten: offsets past it moved, so read the clean file again.
      store = new FileHeldStore(dir, 0, options);
      report = await AppendLog.replay<HeldLogRecord>(path, (r, off, len) => store.apply(r, off, len));
    }
    store.log = store.newLog(report.validBytes);
    store.maybeCompact();
    return store;
  }

  private newLog(startBytes: number): AppendLog<HeldLogRecord> {
    return new AppendLog(join(this.dir, LOG_FILE), { startBytes, datasync: this.datasync, onWriteFailure: this.onWriteFailure, onSynced: this.onSynced });
  }

  get heldTotal(): number {
    return this.total;
  }

  async list(user: string, now: number): Promise<HeldMessage[]> {
    await this.compaction; // offsets move when the log is rewritten
    const entries = this.live(user, now);
    const out: HeldMessage[] = [];
    for (const e of entries) {
      const msg = e.msg ?? (await this.readMessage(e));
      if (msg !== undefined) out.push({ msg, expiresAt: e.exp });
    }
    return out;
  }

  /**
   * Whether `user`'s message `id` is held and unexpired at `now` (epoch ms), from memory (no I/O). At start-up every
   * entry is one read back from the log, so durable; later ones may still be writing (the inbox's replay check asks
   * only about the former). An expired one is not: `list` would not hand it out.
   */
  holds(user: string, id: string, now: number): boolean {
    const e = this.users.get(user)?.get(id);
    return e !== undefined && e.exp > now;
  }

  /**
   * Whether `user` read message `id` (one of the last MAX_READ_IDS_REMEMBERED read), from memory (no I/O). At start-up
   * every read is one read back from the log, so durable (a read is answered only once it is): the inbox's replay
   * check asks then, so a message read before a crash is not delivered again after it.
   */
  wasRead(user: string, id: string): boolean {
    return this.readStates.get(user)?.read.has(id) ?? false;
  }

  async count(user: string, now: number): Promise<number> {
    return this.live(user, now).length;
  }

  async hold(user: string, held: HeldMessage): Promise<void> {
    if (this.users.get(user)?.has(held.msg.id)) return;
    const record: HeldLogRecord = { t: 'hold', user, msg: held.msg, exp: held.expiresAt };
    const entry: HeldEntry = { off: -1, len: 0, exp: held.expiresAt, at: held.msg.acceptedAt, msg: held.msg };
    this.index(user, held.msg.id, entry);
    try {
      await this.write(record, entry);
    } catch (e) {
      this.unindex(user, [held.msg.id]);
      throw e;
    }
    entry.msg = undefined;
  }

  async drop(user: string, ids: readonly string[]): Promise<number> {
    const known = ids.filter((id) => this.users.get(user)?.has(id));
    if (known.length === 0) return 0;
    this.unindex(user, known);
    await this.write({ t: 'drop', user, ids: known });
    return known.length;
  }

  /**
   * The user's read state itself, not a copy: the actor that loads it changes it and saves it back (`saveReads`), so
   * a user has one set of ids in memory, not two (issue 13: keeping and updating a second copy cost ~0.65 µs and
   * ~65 B of old-space garbage per delivery, and at 1,000 unread per user half of the node's live heap).
   */
  async reads(user: string): Promise<ReadState> {
    return this.readStates.get(user) ?? emptyReadState();
  }

  /** Returns a promise only for a durable save; a lazy mark or record is queued and returns `undefined`. */
  saveReads(user: string, state: ReadState, change: ReadChange, durable: boolean): Promise<void> | undefined {
    // The actor's object is the user's state from now on (see `reads`): already changed, nothing to apply here; a
    // state the actor did not load from this store (a first delivery, a test) is taken whole.
    if (this.readStates.get(user) !== state) this.setReads(user, state);
    if ('delivered' in change && !durable) {
      this.queueMark(user, change.delivered);
      return undefined;
    }
    if ('undelivered' in change) {
      // Rare (a delivery whose pushes all failed): the user's whole state, after the marks queued before it.
      this.flushMarks();
      this.appendLazy({ t: 'reads', user, ...toRecord(state) });
      return undefined;
    }
    const record: HeldLogRecord = 'delivered' in change ? { t: 'unreads', users: [user], ids: [change.delivered] } : { t: 'read', user, ids: [...change.read] };
    if (durable) return this.write(record);
    this.appendLazy(record);
    return undefined;
  }

  /** A delivery's unread mark joins this turn's `unreads` record (lazy: a crash loses at most these marks). */
  private queueMark(user: string, id: string): void {
    if (this.closed) return;
    if (this.marks === undefined) {
      this.marks = { users: [], ids: [] };
      setImmediate(() => this.flushMarks());
    }
    this.marks.users.push(user);
    this.marks.ids.push(id);
  }

  /** Queues this turn's marks; called before any other write too, so the log keeps every user's changes in order. */
  private flushMarks(): void {
    const marks = this.marks;
    if (marks === undefined) return;
    this.marks = undefined;
    this.appendLazy({ t: 'unreads', users: marks.users, ids: marks.ids });
  }

  private appendLazy(record: HeldLogRecord): void {
    if (this.deferred !== undefined) this.deferred.push({ record, resolve: () => {}, reject: () => {} });
    else if (!this.closed) this.log.appendLazy(record);
  }

  async close(): Promise<void> {
    this.flushMarks();
    this.closed = true;
    await this.compaction;
    await this.log.close();
    await this.closeReader();
  }

  private async closeReader(): Promise<void> {
    const reader = this.reader;
    this.reader = undefined;
    await (await reader?.catch(() => undefined))?.close();
  }

  /** Unexpired entries of a user, accept order. */
  private live(user: string, now: number): HeldEntry[] {
    const held = this.users.get(user);
    if (held === undefined) return [];
    return [...held.values()].filter((e) => e.exp > now).sort((a, b) => a.at - b.at);
  }

  private async readMessage(e: HeldEntry): Promise<ChatMessage | undefined> {
    const opening = (this.reader ??= open(join(this.dir, LOG_FILE), 'r'));
    let reader: FileHandle;
    try {
      reader = await opening;
    } catch (err) {
      if (this.reader === opening) this.reader = undefined; // the next read tries again
      throw err;
    }
    const buf = Buffer.allocUnsafe(e.len);
    const { bytesRead } = await reader.read(buf, 0, e.len, e.off);
    if (bytesRead !== e.len) return undefined;
    const record = packr.unpack(buf.subarray(HEADER_BYTES)) as HeldLogRecord;
    return record.t === 'hold' ? record.msg : undefined;
  }

  /** Replay: applies one record found at `off` in the log. */
  private apply(r: HeldLogRecord, off: number, len: number): void {
    switch (r.t) {
      case 'hold':
        if (!this.users.get(r.user)?.has(r.msg.id)) this.index(r.user, r.msg.id, { off, len, exp: r.exp, at: r.msg.acceptedAt, msg: undefined });
        return;
      case 'drop':
        this.unindex(r.user, r.ids);
        return;
      case 'unread':
        return this.applyMark(r.user, r.id);
      case 'unreads':
        for (let i = 0; i < r.users.length; i++) this.applyMark(r.users[i], r.ids[i]);
        return;
      case 'read': {
        const s = this.readStates.get(r.user) ?? emptyReadState();
        markRead(s, r.ids);
        this.setReads(r.user, s);
        return;
      }
      case 'reads':
        this.setReads(r.user, fromRecord(r));
    }
  }

  private applyMark(user: string, id: string): void {
    const s = this.readStates.get(user) ?? emptyReadState();
    markDelivered(s, id);
    this.setReads(user, s);
  }

  private setReads(user: string, s: ReadState): void {
    if (isEmptyReadState(s)) this.readStates.delete(user);
    else this.readStates.set(user, s);
  }

  private index(user: string, id: string, entry: HeldEntry): void {
    let held = this.users.get(user);
    if (held === undefined) this.users.set(user, (held = new Map()));
    held.set(id, entry);
    this.total++;
  }

  private unindex(user: string, ids: readonly string[]): void {
    const held = this.users.get(user);
    if (held === undefined) return;
    for (const id of ids) if (held.delete(id)) this.total--;
    if (held.size === 0) this.users.delete(user);
  }

  /** Appends (or defers during compaction) and resolves once durable; a hold's entry learns its offset here. */
  private async write(record: HeldLogRecord, entry?: HeldEntry): Promise<void> {
    if (this.closed) throw new SwitchboardError('shutting_down', 'held store is closed');
    this.flushMarks();
    this.recoverIfFailed();
    const durable = this.deferred !== undefined
      ? new Promise<void>((resolve, reject) => this.deferred!.push({ record, entry, resolve, reject }))
      : this.appendAt(this.log, record, entry);
    this.maybeCompact();
    try {
      await durable;
    } catch (e) {
      throw new SwitchboardError('store_failed', (e as Error).message, { cause: e });
    }
  }

  private appendAt(log: AppendLog<HeldLogRecord>, record: HeldLogRecord, entry?: HeldEntry): Promise<void> {
    const off = log.bytes;
    const done = log.append(record);
    if (entry) {
      entry.off = off;
      entry.len = log.bytes - off;
    }
    return done;
  }

  /**
   * A failed log takes no more appends (AppendLog: its tail is unknown), and the memory here is the truth: every write
   * the log refused was undone in memory (a hold unindexed, a drop kept dropped, a read state as the actor has it).
   * So the same rewrite as a compaction replaces it, and this write waits for it in `deferred`. Without it the store
   * refused every hold until a restart.
   */
  private recoverIfFailed(): void {
    if (!this.log.failed || this.compaction !== undefined || this.closed) return;
    const now = this.now();
    const since = now - this.lastRecovery;
    if (since >= 0 && since < HELD_RECOVERY_INTERVAL_MS) return; // a clock stepped back does not hold recovery off
    this.lastRecovery = now;
    this.compaction = this.compact().finally(() => (this.compaction = undefined));
  }

  private maybeCompact(): void {
    if (this.compaction !== undefined || this.closed || this.log.bytes < this.compactMinBytes) return;
    if (this.log.bytes <= 2 * this.liveBytes()) return;
    this.compaction = this.compact().finally(() => (this.compaction = undefined));
  }

  private liveBytes(): number {
    let bytes = 0;
    for (const held of this.users.values()) for (const e of held.values()) bytes += e.len;
    for (const [user, s] of this.readStates) bytes += 32 + user.length + 24 * (s.unread.size + s.read.size);
    return bytes;
  }

  /**
   * Rewrites the live records (unexpired holds, read states) into a temp file, syncs it, renames it over the log and
   * syncs the directory; writes made meanwhile wait in `deferred` and go to the new log, in call order.
   */
  private async compact(): Promise<void> {
    this.deferred = [];
    const old = this.log;
    const logPath = join(this.dir, LOG_FILE);
    const tmpPath = join(this.dir, SNAPSHOT_TMP);
    let next: AppendLog<HeldLogRecord> | undefined;
    let tmp: AppendLog<HeldLogRecord> | undefined;
    const moved: { entry: HeldEntry; off: number; len: number }[] = [];
    try {
      // A failed log's file may not even close cleanly; the snapshot replaces it either way.
      await (old.failed ? old.close().catch(() => undefined) : old.close());
      await rm(tmpPath, { force: true });
      const snapshot = new AppendLog<HeldLogRecord>(tmpPath, { datasync: this.datasync, onWriteFailure: this.onWriteFailure });
      tmp = snapshot;
      const now = this.now();
      const writes: Promise<void>[] = [];
      const queue = (record: HeldLogRecord): void => {
        const written = snapshot.append(record);
        written.catch(() => undefined); // awaited below with the rest; until then a failed batch must not go unhandled
        writes.push(written);
      };
      for (const [user, held] of [...this.users]) {
        for (const [id, e] of [...held]) {
          if (e.exp <= now) {
            this.unindex(user, [id]);
            continue;
          }
          // A hold made during this compaction waits in `deferred` for its own write to the new log. Copied here
          // too, it would outlive a refusal of that write (the caller told `store_failed`, memory undone) and come
          // back at the next restart.
          if (e.off < 0) continue;
          const msg = e.msg ?? (await this.readMessage(e));
          if (msg === undefined) {
            this.unindex(user, [id]); // its bytes are not in the log (a short read): nothing to carry over
            continue;
          }
          const slot = { entry: e, off: snapshot.bytes, len: 0 };
          queue({ t: 'hold', user, msg, exp: e.exp });
          slot.len = snapshot.bytes - slot.off;
          moved.push(slot);
        }
      }
      for (const [user, s] of this.readStates) queue({ t: 'reads', user, ...toRecord(s) });
      await Promise.all(writes);
      await snapshot.close();
      await this.closeReader();
      await rename(tmpPath, logPath);
      // From here the snapshot is held.log: its offsets are the ones that count, whatever follows.
      for (const m of moved) {
        m.entry.off = m.off;
        m.entry.len = m.len;
      }
      next = this.newLog(snapshot.bytes);
      try {
        await syncDirectory(this.dir);
      } catch (e) {
        // The rename may not be durable yet (a crash could bring the old file back: holds and drops written since
        // would be missing or doubled, never misread). Reported as a write failure; the log goes on.
        this.onWriteFailure?.({ path: logPath, error: e, cut: true });
      }
    } catch {
      await tmp?.close().catch(() => undefined); // its file handle, whatever state it is in
    }
    next ??= old.failed ? old : this.newLog(old.bytes);
    this.log = next;
    const waiting = this.deferred;
    this.deferred = undefined;
    for (const w of waiting) this.appendAt(next, w.record, w.entry).then(w.resolve, w.reject);
  }
}
