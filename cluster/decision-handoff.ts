import type { KV } from '@nats-io/kv';
import { Packr } from 'msgpackr';
import { within } from '../base/within.js';
import { keyOf } from './kv-device-registry.js';

const packr = new Packr({ useRecords: false });

/** How long a saved history waits for its next owner in the bucket (`max_age`), ms: a week. */
export const DECISION_HANDOFF_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
/** Longest a partition's handoff waits for its histories to be saved, ms; past it the rest is not waited for. */
export const SAVE_WAIT_MS = 2000;
/** Longest a `GET …/decisions` waits for the previous owner's saved history, ms; past it it answers without. */
export const LOAD_WAIT_MS = 1000;

/**
 * A cluster node's decision history across a graceful partition handoff (PROTOCOL.md section 3: "at least the last
 * 100 decisions are kept"): the owner handing a partition off (a node joining, SIGTERM) saves each of its users'
 * packed decisions as one KV value (`u.<base64url(user)>`, MessagePack array of the packed strings, ~4 KiB for a
 * full history), and the next owner reads a user's value the first time that user's decisions are asked for, merging
 * them in front of its own (`DecisionHistory.merge`), or, if it never was asked, when it hands the partition on in
 * turn, so a chain of handoffs keeps the oldest owner's decisions too. Between handoffs the owner also writes the same
 * values behind (cluster/decision-write-behind.ts, SWITCHBOARD_DECISION_SAVE_MS), so a crash of the owner loses only
 * its last interval of decisions. Values expire after DECISION_HANDOFF_MAX_AGE_MS (the bucket's `max_age`).
 *
 * Each value carries the lease epoch of the tenure that saved it (`{ epoch, decisions }`; `LeaseValue.epoch`, +1 per
 * acquisition), and a reader takes only a value saved before its own tenure and from `since` on. Written behind, every
 * tenure that routes for a user saves at once, so `since` is 0: the value is the latest history whoever saved it.
 * Saved only at handoffs (SWITCHBOARD_DECISION_SAVE_MS=0), `since` is the start of the reader's run of graceful handoffs
 * (`LeaseValue.since`): a tenure in between may never have touched the user and saved nothing for it (A to B to C
 * keeps A's value), but a lease that lapsed (a crash, a pause) breaks the run. A value left by an earlier handoff was
 * otherwise still in the bucket after a later owner crashed, and taken for that owner's history: older decisions
 * shown as the latest, the crashed tenure's gap hidden.
 */
export class KvDecisionHandoff {
  constructor(private readonly kv: KV) {}

  /**
   * Saves each user's packed decisions, stamped with `epoch`, the saving tenure's lease epoch; resolves when all are
   * written or after `waitMs` with how many were not known stored by then (refused, or unanswered within the wait;
   * for the store's failure metric), never rejects.
   */
  async save(histories: readonly [user: string, packed: string[]][], epoch: number, waitMs = SAVE_WAIT_MS): Promise<number> {
    if (histories.length === 0) return 0;
    let stored = 0;
    const put = ([user, decisions]: [string, string[]]) =>
      this.kv.put(keyOf(user), packr.pack({ epoch, decisions } satisfies SavedDecisions)).then(() => void stored++);
    await within(Promise.allSettled(histories.map(put)).then(() => undefined), waitMs, undefined);
    return histories.length - stored;
  }

  /**
   * The user's decisions (packed, as saved) if a tenure of lease epoch `since` <= epoch < `before` saved them, else an
   * empty list: none saved, saved before the run of graceful handoffs began (the owner in between crashed),
   * unreadable, or not within `waitMs`.
   */
  load(user: string, epochs: { since: number; before: number }, waitMs = LOAD_WAIT_MS): Promise<string[]> {
    const get = this.kv.get(keyOf(user)).then((e) => {
      if (e === null || e.operation !== 'PUT' || e.value.length === 0) return [];
      const value = packr.unpack(e.value) as Partial<SavedDecisions> | null;
      const epoch = value?.epoch;
      if (typeof epoch !== 'number' || epoch < epochs.since || epoch >= epochs.before || !Array.isArray(value!.decisions)) return [];
      return value!.decisions.filter((s): s is string => typeof s === 'string');
    }).catch((): string[] => []); // also when it fails after the wait ended: never an unhandled rejection
    return within(get, waitMs, []);
  }
}

/** One user's saved value (MessagePack map). */
interface SavedDecisions {
  /** Lease epoch of the tenure that saved it (cluster/lease-value.ts). */
  epoch: number;
  /** Packed decisions, oldest first (actors/decision-pack.ts). */
  decisions: string[];
}
