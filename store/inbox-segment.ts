import type { AppendLog } from './append-log.js';
import type { ChatMessage } from '../protocol/index.js';

/** On-disk records of a segment. A record of any other type makes `FileInbox.open` fail (a newer version wrote it). */
export type InboxRecord =
  /** One accepted message (what versions before `accepted_many` wrote for every accept; now a lone one). */
  | { t: 'accepted'; msg: ChatMessage }
  /**
   * The messages accepted in one synchronous run (a burst of `FileInbox.accept` calls, or a batch), at most
   * MAX_MESSAGES_PER_RECORD, in accept order: read as that many `accepted` records. `ids: 0` is a downgrade guard:
   * versions before this record read any record with `ids` as a settle and iterate it, so a number stops their
   * `FileInbox.open` with a TypeError, where a record without it would have been taken for a settle of nothing, the
   * segment counted empty and deleted with its unsettled messages (README, "Durable state").
   */
  | { t: 'accepted_many'; msgs: ChatMessage[]; ids: 0 }
  /** One settled message (written by earlier versions; still read). */
  | { t: 'settled'; id: string }
  /** The messages settled in one event-loop turn. */
  | { t: 'settled'; ids: string[] };

const SEGMENT_NAME = /^inbox-(\d{6,})\.log$/;

export function segmentFileName(no: number): string {
  return `inbox-${String(no).padStart(6, '0')}.log`;
}

export function segmentNumberOf(fileName: string): number | undefined {
  const match = SEGMENT_NAME.exec(fileName);
  return match ? Number(match[1]) : undefined;
}

/**
 * Book-keeping for one inbox segment file, enough to decide when deleting it cannot change what a replay yields.
 */
export class InboxSegment {
  /** Messages accepted in this segment and not yet settled. */
  private unsettled = 0;
  private newestAcceptedAt = Number.NEGATIVE_INFINITY;
  /** Older segments whose messages are settled by records in this one. */
  private readonly settlesFor = new Set<number>();

  constructor(readonly no: number, readonly log: AppendLog<InboxRecord>) {}

  noteAccepted(acceptedAt: number): void {
    this.unsettled++;
    this.newestAcceptedAt = Math.max(this.newestAcceptedAt, acceptedAt);
  }

  /** An accept whose write failed: it was never acknowledged, so it does not pin the segment. */
  forgetAccepted(): void {
    this.unsettled--;
  }

  noteSettled(): void {
    this.unsettled--;
  }

  get allSettled(): boolean {
    return this.unsettled === 0;
  }

  noteSettleRecordFor(segmentNo: number): void {
    if (segmentNo !== this.no) this.settlesFor.add(segmentNo);
  }

  /**
   * Deletable when (1) every message accepted here is settled, (2) its accepted ids have left the dedupe window, so
   * replay rebuilds the same window without it, and (3) no older segment still on disk depends on the settle records
   * kept here: deleting them first would make replay redeliver that segment's settled messages.
   */
  isDeletable(dedupeHorizon: number, stillOnDisk: (segmentNo: number) => boolean): boolean {
    if (this.unsettled > 0 || this.newestAcceptedAt > dedupeHorizon) return false;
    for (const no of this.settlesFor) if (stillOnDisk(no)) return false;
    return true;
  }
}
