import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChatMessage } from '../protocol/index.js';
import { SwitchboardError } from '../protocol/index.js';
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
  /** A segment replay found damage or a torn tail (report of AppendLog.replay). For store health. */
  onDamage?: (file: string, report: ReplayReport) => void;
}


interface PendingMessage {
  msg: ChatMessage;
  segment: InboxSegment;
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
  /** Segments also become deletable as time moves their ids out of the dedupe window. */
  private collectTimer?: ReturnType<typeof setInterval>;
  private closed = false;
  private readonly dedupeWindowMs: number;
  private readonly segmentBytes: number;
  private readonly now: () => number;
  private readonly onConsumerError: (error: unknown, msg: ChatMessage) => void;
  private readonly datasync: AppendLogOptions['datasync'];
  private readonly onWriteFailure: AppendLogOptions['onWriteFailure'];
  private readonly onDamage?: (file: string, report: ReplayReport) => void;

  private constructor(readonly dir: string, options: FileInboxOptions) {
    this.dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
    this.seen = new DedupeWindow(this.dedupeWindowMs);
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.now = options.now ?? Date.now;
    this.onConsumerError = options.onConsumerError ?? ((e) => queueMicrotask(() => { throw e; }));
    this.datasync = options.datasync;
    this.onWriteFailure = options.onWriteFailure;
    this.onDamage = options.onDamage;
  }

  /** Opens (or creates) the inbox in `dir`, replaying every segment to rebuild the backlog and the dedupe window. */
  static async open(dir: string, options: FileInboxOptions = {}): Promise<FileInbox> {
    await mkdir(dir, { recursive: true });
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
    const durable = segment.log.append({ t: 'accepted', msg } satisfies InboxRecord);
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
   * test/store-file-inbox-batch.test.ts compare both), with the new ones appended as one log write with one promise
   * (issue 13: one `accept` per message, each with its promise chain, tracker entry and frame buffer, made a batched
   * message cost ~7.9 µs of CPU from body to answer in a loop of 100-message batches; this path ~6.4 µs, medians).
   */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]> {
    const outcomes = new Array<AcceptOutcome>(msgs.length);
    if (this.closed) return Promise.resolve(outcomes.fill(new SwitchboardError('shutting_down', 'inbox is closed')));
    const now = this.now();
    this.pruneSeen(now);
    const segment = this.writableSegment();
    // `written` stands in `inflight` for this batch's ids: it settles as their write does, for later accepts of them.
    let write!: { resolve: () => void; reject: (e: unknown) => void };
    const written = new Promise<void>((resolve, reject) => (write = { resolve, reject }));
    const fresh: number[] = [];
    const records: InboxRecord[] = [];
    let repeats: number[] | undefined;
    let waits: Promise<void>[] | undefined;
    for (let i = 0; i < msgs.length; i++) {
      const msg = msgs[i];
      const earlier = this.inflight.get(msg.id);
      if (earlier === written) (repeats ??= []).push(i);
      else if (earlier !== undefined) {
        // As in `accept`: a duplicate of a message not yet durable answers as the original does.
        (waits ??= []).push(earlier.then(() => void (outcomes[i] = 'duplicate'), (e: unknown) => void (outcomes[i] = storeFailed(e))));
      } else {
        if (this.seenRecently(msg.id, now)) outcomes[i] = 'duplicate';
        else {
          segment.noteAccepted(msg.acceptedAt);
          this.inflight.set(msg.id, written);
          fresh.push(i);
          records.push({ t: 'accepted', msg });
        }
      }
    }
    const answered = (): AcceptOutcome[] | Promise<AcceptOutcome[]> => (waits === undefined ? outcomes : Promise.all(waits).then(() => outcomes));
    if (fresh.length === 0) return Promise.resolve(answered());
    written.catch(() => undefined); // its failure is answered through `outcomes`; waiters attach their own handlers
    return segment.log.appendMany(records).then(
      () => {
        for (const i of fresh) {
          this.durable(msgs[i], segment);
          outcomes[i] = 'accepted';
        }
        if (repeats !== undefined) for (const i of repeats) outcomes[i] = 'duplicate';
        write.resolve();
        return answered();
      },
      (e: unknown) => {
        const failed = storeFailed(e);
        for (const i of fresh) {
          this.notDurable(msgs[i], segment);
          outcomes[i] = failed;
        }
        if (repeats !== undefined) for (const i of repeats) outcomes[i] = failed;
        write.reject(e);
        return answered();
      },
    );
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
      if (record.t === 'accepted') {
        const { msg } = record;
        const earlier = this.pending.get(msg.id);
        if (earlier !== undefined) return; // already pending from an earlier segment
        segment.noteAccepted(msg.acceptedAt);
        this.pending.set(msg.id, { msg, segment });
        this.seen.add(msg.id, msg.acceptedAt);
      } else if ('ids' in record) for (const id of record.ids) this.replaySettled(id, segment);
      else this.replaySettled(record.id, segment);
    });
    if (report.discardedBytes > 0) this.onDamage?.(path, report);
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
    const segment = new InboxSegment(no, new AppendLog<InboxRecord>(join(this.dir, segmentFileName(no)), { datasync: this.datasync, onWriteFailure: this.onWriteFailure }));
    this.segments.set(no, segment);
    return segment;
  }

  /** Later records go to a new file; the old one is closed once its queued appends are synced. */
  private roll(): void {
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
