import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChatMessage } from '../protocol/index.js';
import { SwitchboardError } from '../protocol/index.js';
import { privateDir } from './private-dir.js';
import { DedupeWindow } from './dedupe-window.js';
import { freshWhenEmptied } from '../base/young-tables.js';
import { AppendLog, syncDirectory, type AppendLogOptions, type ReplayReport } from './append-log.js';
import { InboxSegment, segmentFileName, segmentNumberOf, type InboxRecord } from './inbox-segment.js';

export type { InboxRecord } from './inbox-segment.js';
import type { AcceptOutcome, AcceptResult, Ingress } from './types.js';

export const DEFAULT_DEDUPE_WINDOW_MS = 120_000;
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

export interface FileInboxOptions {
  /** An `id` accepted this recently (by `acceptedAt`) is answered `duplicate`. Default 120000. */
  dedupeWindowMs?: number;
  /** A segment file is closed and a new one started past this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Epoch ms; injected so tests move the dedupe window without sleeping. Default `Date.now`. */
  now?: () => number;
  /** Called when the consumer throws; default rethrows asynchronously so the bug is not hidden. */
  onConsumerError?: (error: unknown, msg: ChatMessage) => void;
  /** Passed to each segment's AppendLog; tests inject disk failures with it. Default fdatasync. */
  datasync?: AppendLogOptions['datasync'];
  /** A segment write failed (cut off or not): the accepts in it were answered 503. For store health. */
  onWriteFailure?: AppendLogOptions['onWriteFailure'];
  /** A segment's batch of accepts (and the settles riding along) is durable. For the sync metrics. */
  onSynced?: AppendLogOptions['onSynced'];
  /** A segment replay found damage or a torn tail (report of AppendLog.replay). For store health. */
  onDamage?: (file: string, report: ReplayReport) => void;
}


interface PendingMessage {
  msg: ChatMessage;
  segment: InboxSegment;
}

/**
 * Messages per `accepted_many` record. A message is at most MAX_MESSAGE_BYTES (64 KiB) of JSON, nearly all of it
 * strings (`data` holds strings only; the numbers are a few small fields), and its MessagePack is no larger, so a full
 * record is at most ~4 MiB, well under the log's 16 MiB frame limit (MAX_RECORD_BYTES, which `encodeFrame` enforces).
 * Per-record costs are shared 64 ways already; a damaged record loses its messages, so it is kept this small.
 */
export const MAX_MESSAGES_PER_RECORD = 64;

/** The accepts of the current synchronous run, written as one record once it ends (`FileInbox.sealTurn`). */
interface TurnBatch {
  segment: InboxSegment;
  msgs: ChatMessage[];
  /** Settles as the record's append does; every accept of the batch derives its answer from it. */
  written: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Embedded durable ingress: accepted-but-unsettled messages in segment files `inbox-NNNNNN.log` under one directory.
 * A segment is deleted once everything accepted in it is settled and out of the dedupe window, so disk follows the
 * backlog; the rules that keep replay correct across deletions live in `InboxSegment`.
 */
export class FileInbox implements Ingress {
  /** Unsettled messages in acceptance order: the replay backlog. */
  private pending = new Map<string, PendingMessage>();
  /** Recently accepted ids with their `acceptedAt`. */
  private readonly seen: DedupeWindow;
  private inflight = new Map<string, Promise<void>>();
  private readonly segments = new Map<number, InboxSegment>();
  private current!: InboxSegment;
  private handler: ((msg: ChatMessage) => void) | undefined;
  private collecting: Promise<void> = Promise.resolve();
  /** Ids settled this turn, written as one lazy `settled` record (issue 13: one record per message cost ~2% of the node's CPU). */
  private settling: string[] = [];
  /** Accepts of the current synchronous run not yet handed to the log (see `joinTurn`). */
  private turn: TurnBatch | undefined;
  private readonly sealTurnBound = (): void => this.sealTurn();
  /** Segments also become deletable as time moves their ids out of the dedupe window. */
  private collectTimer?: ReturnType<typeof setInterval>;
  private closed = false;
  private readonly dedupeWindowMs: number;
  private readonly segmentBytes: number;
  private readonly now: () => number;
  private readonly onConsumerError: (error: unknown, msg: ChatMessage) => void;
  private readonly datasync: AppendLogOptions['datasync'];
  private readonly onWriteFailure: AppendLogOptions['onWriteFailure'];
  private readonly onSynced: AppendLogOptions['onSynced'];
  private readonly onDamage?: (file: string, report: ReplayReport) => void;

  private constructor(readonly dir: string, options: FileInboxOptions) {
    this.dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
    this.seen = new DedupeWindow(this.dedupeWindowMs);
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.now = options.now ?? Date.now;
    this.onConsumerError = options.onConsumerError ?? ((e) => queueMicrotask(() => { throw e; }));
    this.datasync = options.datasync;
    this.onWriteFailure = options.onWriteFailure;
    this.onSynced = options.onSynced;
    this.onDamage = options.onDamage;
  }

  /** Opens (or creates) the inbox in `dir`, replaying every segment to rebuild the backlog and the dedupe window. */
  static async open(dir: string, options: FileInboxOptions = {}): Promise<FileInbox> {
    await privateDir(dir);
    const inbox = new FileInbox(dir, options);
    const numbers = (await readdir(dir)).map(segmentNumberOf).filter((n): n is number => n !== undefined);
    numbers.sort((a, b) => a - b);
    for (const no of numbers) await inbox.replaySegment(no);
    const last = numbers.length > 0 ? numbers[numbers.length - 1] + 1 : 1;
    // Always start a fresh segment: the last one may end in a cut tail, and replayed segments stay read-only.
    inbox.current = inbox.addSegment(last);
    inbox.pruneSeen(inbox.now());
    inbox.collectSegments();
    inbox.collectTimer = setInterval(() => inbox.collectSegments(), Math.max(1000, Math.floor(inbox.dedupeWindowMs / 4)));
    inbox.collectTimer.unref();
    return inbox;
  }

  /**
   * `Ingress.accept`: resolves `accepted` once the record holding `msg` (this run's, see `joinTurn`) is written and
   * synced, `duplicate` for an id accepted within the dedupe window or still unsettled; rejects with `store_failed`
   * (503, temporary) when that record's write fails or it cannot be encoded, and `shutting_down` once closed. A copy
   * of an id whose write is still under way answers as that write does.
   */
  accept(msg: ChatMessage): Promise<AcceptResult> {
    if (this.closed) return Promise.reject(new SwitchboardError('shutting_down', 'inbox is closed'));
    const now = this.now();
    this.pruneSeen(now);
    const earlier = this.inflight.get(msg.id);
    // A duplicate of a message not yet durable answers as the original does: duplicate, or store_failed.
    if (earlier !== undefined) return earlier.then(() => 'duplicate', (e: unknown) => Promise.reject(storeFailed(e)));
    if (this.seenRecently(msg.id, now)) return Promise.resolve('duplicate');

    const segment = this.writableSegment();
    segment.noteAccepted(msg.acceptedAt);
    const durable = this.joinTurn(segment, msg);
    this.inflight.set(msg.id, durable);
    // One derived promise per accept, no async frame (issue 13: this runs for every message).
    return durable.then(
      (): AcceptResult => {
        this.durable(msg, segment);
        return 'accepted';
      },
      (e: unknown) => {
        this.notDurable(msg, segment);
        throw storeFailed(e);
      },
    );
  }

  /**
   * `accept` of each message in order, answered as those calls would be (the shared contract suite and
   * test/store-file-inbox-batch.test.ts compare both): one outcome per message, never a rejection. The new ones join
   * this run's records as accepts do (`joinTurn`: more than MAX_MESSAGES_PER_RECORD make several records), with one
   * answer per record instead of a promise chain per message (issue 13: one `accept` per message, each with its
   * promise chain and tracker entry, made a batched message cost ~7.9 µs of CPU from body to answer in a loop of
   * 100-message batches on the 2-core bench VM of that round; batched, ~6.4 µs, medians; bench/README.md, "Batch
   * accept pass").
   */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
    const outcomes = new Array<AcceptOutcome>(msgs.length);
    if (this.closed) return Promise.resolve(outcomes.fill(new SwitchboardError('shutting_down', 'inbox is closed')));
    const now = this.now();
    this.pruneSeen(now);
    const segment = this.writableSegment();
    const waits: Promise<void>[] = [];
    /** The write of the record the messages of `group` (indices into `msgs`) joined. */
    let written: Promise<void> | undefined;
    let group: number[] = [];
    const answer = (write: Promise<void>, indices: number[]): Promise<void> => write.then(
      () => {
        for (const i of indices) {
          this.durable(msgs[i], segment);
          outcomes[i] = 'accepted';
        }
      },
      (e: unknown) => {
        const failed = storeFailed(e);
        for (const i of indices) {
          this.notDurable(msgs[i], segment);
          outcomes[i] = failed;
        }
      },
    );
    for (let i = 0; i < msgs.length; i++) {
      const msg = msgs[i];
      const earlier = this.inflight.get(msg.id);
      if (earlier !== undefined) {
        // As in `accept`: a duplicate of a message not yet durable (earlier in this batch too) answers as the original does.
        waits.push(earlier.then(() => void (outcomes[i] = 'duplicate'), (e: unknown) => void (outcomes[i] = storeFailed(e))));
      } else if (this.seenRecently(msg.id, now)) outcomes[i] = 'duplicate';
      else {
        segment.noteAccepted(msg.acceptedAt);
        const write = this.joinTurn(segment, msg);
        if (write !== written) {
          if (written !== undefined) waits.push(answer(written, group));
          written = write;
          group = [];
        }
        group.push(i);
        this.inflight.set(msg.id, write);
      }
    }
    if (written !== undefined) waits.push(answer(written, group));
    return waits.length === 0 ? Promise.resolve(outcomes) : Promise.all(waits).then(() => outcomes);
  }

  /**
   * Adds `msg` to the accepts of this synchronous run (the code that runs before the next microtask: one socket
   * read's requests, one batch, one loop of in-process accepts), which reach the log as one `accepted_many` record
   * when the run ends, and returns the promise of that record's write. Issue 13: an `append` per accept (its frame,
   * MessagePack call, checksum, promise and queue entry) cost ~1 µs of CPU per accept: `FileInbox.accept` alone, 200
   * concurrent, 5.45-5.69 -> 3.39-3.81 µs of process CPU per accept on a 2-core VM (bench/README.md, "A seventh VM").
   */
  private joinTurn(segment: InboxSegment, msg: ChatMessage): Promise<void> {
    let turn = this.turn;
    if (turn !== undefined && (turn.segment !== segment || turn.msgs.length >= MAX_MESSAGES_PER_RECORD)) {
      this.sealTurn();
      turn = undefined;
    }
    if (turn === undefined) {
      let settle!: Pick<TurnBatch, 'resolve' | 'reject'>;
      const written = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      turn = this.turn = { segment, msgs: [], written, ...settle };
      queueMicrotask(this.sealTurnBound);
    }
    turn.msgs.push(msg);
    return turn.written;
  }

  /**
   * Hands the current run's accepts to their segment's log as one record (a lone one as a plain `accepted`).
   * Called at the end of the run, before a roll closes the segment, at close, and when the record is full. A log that
   * refuses the record (closed, failed: a rejected promise) or an encoding that throws (`encodeFrame`'s RangeError
   * over MAX_RECORD_BYTES) fails every accept of the record like a failed write: `store_failed`, nothing acknowledged.
   */
  private sealTurn(): void {
    const turn = this.turn;
    if (turn === undefined) return;
    this.turn = undefined;
    const record: InboxRecord = turn.msgs.length === 1 ? { t: 'accepted', msg: turn.msgs[0] } : { t: 'accepted_many', msgs: turn.msgs, ids: 0 };
    try {
      turn.segment.log.append(record).then(turn.resolve, turn.reject);
    } catch (e) {
      turn.reject(e);
    }
  }

  /** Accepted within the dedupe window, or still unsettled: a new accept of `id` is a duplicate. */
  private seenRecently(id: string, now: number): boolean {
    if (this.pending.has(id)) return true;
    const seenAt = this.seen.seenAt(id);
    return seenAt !== undefined && now - seenAt < this.dedupeWindowMs;
  }

  /** The segment new accepts go to: a fresh one once the current failed or is full. */
  private writableSegment(): InboxSegment {
    if (this.current.log.failed || this.current.log.bytes >= this.segmentBytes) this.roll();
    return this.current;
  }

  /** `msg`'s accepted record is durable: remembered for dedupe, unsettled until `done`, handed to the consumer. */
  private durable(msg: ChatMessage, segment: InboxSegment): void {
    this.inflight = freshWhenEmptied(this.inflight, msg.id);
    this.seen.add(msg.id, msg.acceptedAt);
    this.pending.set(msg.id, { msg, segment });
    if (this.handler !== undefined) this.deliver(msg);
  }

  /** `msg`'s write failed: never acknowledged, so a retry of the same id goes through. */
  private notDurable(msg: ChatMessage, segment: InboxSegment): void {
    this.inflight = freshWhenEmptied(this.inflight, msg.id);
    segment.forgetAccepted();
  }

  /** The embedded node owns every partition, so `partition` is ignored. */
  async consume(handler: (msg: ChatMessage) => void, _partition?: number): Promise<void> {
    if (this.handler !== undefined) throw new Error('FileInbox has one consumer');
    this.handler = handler;
    for (const { msg } of [...this.pending.values()]) this.deliver(msg);
  }

  /** Unsettled messages stay in their segments and are handed out again at the next open. */
  async release(_partition?: number): Promise<void> {
    this.handler = undefined;
  }

  done(id: string): void {
    const entry = this.pending.get(id);
    if (entry === undefined || this.closed) return;
    this.pending = freshWhenEmptied(this.pending, id);
    entry.segment.noteSettled();
    if (this.current.log.failed) this.roll();
    this.current.noteSettleRecordFor(entry.segment.no);
    // Lazy: a settle lost in a crash only means one more delivery after restart (at least once), so it rides
    // along with the next accept's fdatasync instead of costing one of its own; the turn's settles share a record.
    if (this.settling.push(id) === 1) setImmediate(() => this.flushSettles());
    // Deletion is only ever unlocked here when an older segment became fully settled (the timer covers the window).
    if (entry.segment !== this.current && entry.segment.allSettled) this.collectSegments();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.sealTurn();
    this.flushSettles();
    this.closed = true;
    clearInterval(this.collectTimer);
    await Promise.allSettled([...this.inflight.values()]);
    await this.collecting;
    await Promise.all([...this.segments.values()].map((s) => s.log.close()));
  }

  /** How many messages are accepted and not settled; files on disk. For metrics and tests. */
  stats(): { pending: number; segments: number[] } {
    return { pending: this.pending.size, segments: [...this.segments.keys()] };
  }

  /** write + fdatasync rounds of the segments still open: the group-commit counter for benchmarks. */
  segmentSyncs(): number {
    let syncs = 0;
    for (const s of this.segments.values()) syncs += s.log.stats.syncs;
    return syncs;
  }

  private deliver(msg: ChatMessage): void {
    try {
      this.handler?.(msg);
    } catch (e) {
      this.onConsumerError(e, msg);
    }
  }

  private async replaySegment(no: number): Promise<void> {
    const path = join(this.dir, segmentFileName(no));
    const segment = new InboxSegment(no, new AppendLog<InboxRecord>(path));
    this.segments.set(no, segment);
    const report = await AppendLog.replay<InboxRecord>(path, (record) => {
      switch (record.t) {
        case 'accepted':
          return this.replayAccepted(record.msg, segment);
        case 'accepted_many':
          for (const msg of record.msgs) this.replayAccepted(msg, segment);
          return;
        case 'settled':
          for (const id of 'ids' in record ? record.ids : [record.id]) this.replaySettled(id, segment);
          return;
        default:
          // A record this version does not know (a newer one wrote it): taking it for something else could delete a
          // segment of unsettled messages, so the inbox does not open (the data dir is left as it is).
          throw new Error(`${path} holds an inbox record of unknown type ${JSON.stringify((record as { t: unknown }).t)}, written by a newer version: run that version, or move the file away to drop its messages (and its settles of older segments' messages, which are then delivered again)`);
      }
    });
    if (report.discardedBytes > 0) this.onDamage?.(path, report);
  }

  private replayAccepted(msg: ChatMessage, segment: InboxSegment): void {
    if (this.pending.has(msg.id)) return; // already pending from an earlier segment
    segment.noteAccepted(msg.acceptedAt);
    this.pending.set(msg.id, { msg, segment });
    this.seen.add(msg.id, msg.acceptedAt);
  }

  private replaySettled(id: string, segment: InboxSegment): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return; // its accepted record lives in a deleted segment
    this.pending = freshWhenEmptied(this.pending, id);
    entry.segment.noteSettled();
    segment.noteSettleRecordFor(entry.segment.no);
  }

  /** Queues this turn's settles into the current segment (before a roll too: `noteSettleRecordFor` named that segment). */
  private flushSettles(): void {
    if (this.settling.length === 0) return;
    const ids = this.settling;
    this.settling = [];
    this.current.log.appendLazy({ t: 'settled', ids } satisfies InboxRecord);
  }

  private addSegment(no: number): InboxSegment {
    const segment = new InboxSegment(no, new AppendLog<InboxRecord>(join(this.dir, segmentFileName(no)), { datasync: this.datasync, onWriteFailure: this.onWriteFailure, onSynced: this.onSynced }));
    this.segments.set(no, segment);
    return segment;
  }

  /** Later records go to a new file; the old one is closed once its queued appends are synced. */
  private roll(): void {
    this.sealTurn(); // the run's accepts so far belong to the old segment (`noteAccepted` counted them there)
    this.flushSettles();
    const old = this.current;
    this.current = this.addSegment(old.no + 1);
    void old.log.close();
    this.collectSegments();
  }

  private pruneSeen(now: number): void {
    this.seen.prune(now);
  }

  /** Deletes deletable segments one at a time, oldest first, syncing the directory after each (see InboxSegment). */
  private collectSegments(): void {
    this.collecting = this.collecting.then(async () => {
      for (;;) {
        const horizon = this.now() - this.dedupeWindowMs;
        const oldestFirst = [...this.segments.values()].sort((a, b) => a.no - b.no);
        const victim = oldestFirst.find((s) => s !== this.current && s.isDeletable(horizon, (no) => this.segments.has(no)));
        if (victim === undefined) return;
        await victim.log.close();
        try {
          await unlink(victim.log.path);
        } catch (e) {
          // Keep it on the books so segments holding its settle records stay too; the next open tries again.
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return;
        }
        this.segments.delete(victim.no);
        await syncDirectory(this.dir);
      }
    }).catch(() => undefined); // a failed directory sync: the unlink is redone by replay at the next open at worst
  }
}

function storeFailed(cause: unknown): SwitchboardError {
  return new SwitchboardError('store_failed', cause instanceof Error ? cause.message : String(cause), { cause });
}
