import type { ChatMessage } from '../protocol/index.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import { emptyReadState, isEmptyReadState, markDelivered, markRead, unmarkDelivered, unreadCount } from '../store/read-state.js';
import type { HeldMessage, HeldStore, ReadChange, ReadState } from '../store/types.js';

/** What a user's mailbox needs from the node. */
export interface MailboxDeps {
  held: HeldStore;
  /** SWITCHBOARD_HOLD_TTL_SECONDS in ms: how long a message without `ttlSeconds` stays held (default 7 days). */
  holdTtlMs: number;
  /** SWITCHBOARD_HOLD_MAX: held messages per user at most, the oldest dropped first (default 1000). */
  holdMax: number;
  metrics: Metrics;
  log: Logger;
}

/**
 * One user's held messages and read state (PROTOCOL.md section 4: held messages, read sync) as the user actor sees
 * them: the count and the badge in memory, the messages themselves in the HeldStore until a replay needs them.
 */
/** Longest a mailbox load may take before it counts as failed (tried again at the next trigger). */
export const MAILBOX_LOAD_TIMEOUT_MS = 10_000;

export class UserMailbox {
  /** Held for this user (unexpired), as last counted plus holds since. */
  heldCount = 0;
  /** True once the count and the read state were read from the store. */
  loaded = false;
  /** Created with the first delivery or read: a live actor of a user with no read state pays for no sets. */
  private state: ReadState | undefined;
  /** Read-state changes made before the load finished, applied on top of what it read. */
  private early: ReadChange[] = [];
  private loading?: Promise<boolean>;
  private trimming: Promise<void> = Promise.resolve();
  /**
   * One set per listing not yet routed: the ids that stopped being held since it began (reached the user, read,
   * trimmed). A listing is a snapshot, read message by message and routed a turn later; without this, a message
   * acked meanwhile came back in it and was sent a second time (a replay asked for again while one was under way).
   */
  private listings?: Set<string>[];
  /**
   * Holds not yet stored: a count read from the store meanwhile (the cluster's lists only what JetStream has) misses
   * them, and a count of 0 would stop replays while they are held (see `counted`).
   */
  private holding = 0;
  /** Ids whose drop from the store is under way, with how many drops: a listing read meanwhile may still hold them. */
  private dropping?: Map<string, number>;

  constructor(readonly user: string, private readonly deps: MailboxDeps) {}

  /**
   * Reads the held count and the read state, in the background: routing waits for the first try at most
   * MAX_WAIT_BEHIND_REPLAY_MS (user-actor.ts; a JetStream leader election must not stall a user's messages). Resolves true once loaded; false when the store failed or took
   * longer than MAILBOX_LOAD_TIMEOUT_MS (the next call tries again).
   */
  load(now: number): Promise<boolean> {
    if (this.loaded) return Promise.resolve(true);
    this.loading ??= (async () => {
      try {
        const [count, reads] = await withTimeout(Promise.all([this.deps.held.count(this.user, now), this.deps.held.reads(this.user)]), MAILBOX_LOAD_TIMEOUT_MS);
        if (!this.loaded) this.merge(count, reads);
        return true;
      } catch (err) {
        this.deps.log.error({ err, user: this.user }, 'held store load failed');
        return false;
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }

  private merge(count: number, reads: ReadState): void {
    this.heldCount += count; // holds made meanwhile were counted already
    this.state = isEmptyReadState(reads) ? undefined : reads;
    const early = this.early;
    this.early = [];
    this.loaded = true;
    for (const change of early) {
      if ('delivered' in change) this.delivered(change.delivered);
      else if ('undelivered' in change) this.undelivered(change.undelivered);
      else {
        markRead((this.state ??= emptyReadState()), change.read);
        this.save(change, true)?.catch(() => undefined);
      }
    }
  }

  /** The badge: delivered and not read. */
  get unread(): number {
    return this.state === undefined ? 0 : unreadCount(this.state);
  }

  /** When a held copy of `msg` stops being held; undefined when it must not be held (`ttlSeconds: 0`, or expired). */
  expiresAt(msg: ChatMessage, now: number): number | undefined {
    if (msg.ttlSeconds === 0) return undefined;
    const at = msg.acceptedAt + (msg.ttlSeconds !== undefined ? msg.ttlSeconds * 1000 : this.deps.holdTtlMs);
    return at > now ? at : undefined;
  }

  /**
   * Holds are being written: the messages in them are not in a listing yet and go out by the replay their `held_done`
   * starts, so a new message routed meanwhile waits behind them (UserActor.replayPending, section 4 accept order).
   */
  get holdsInFlight(): boolean {
    return this.holding > 0;
  }

  /** Holds `msg` durably; past SWITCHBOARD_HOLD_MAX the oldest held ones are dropped first. Rejects when not durable. */
  async hold(msg: ChatMessage, expiresAt: number, now: number): Promise<void> {
    this.heldCount++;
    this.holding++;
    if (this.heldCount > this.deps.holdMax) this.trimming = this.trimming.then(() => this.trim(now));
    try {
      await this.deps.held.hold(this.user, { msg, expiresAt });
    } catch (e) {
      this.heldCount--;
      throw e;
    } finally {
      this.holding--;
    }
    this.gauge();
  }

  /**
   * Held messages in accept order, for a replay; the count follows what the store has. The listing stays open until
   * `routed(listing)`: route only the messages `stillHeld` says are, so none that stopped being held since the
   * listing began (acked, read, trimmed, or being dropped) goes out again. Rejects when the store cannot be read.
   */
  async list(now: number): Promise<HeldListing> {
    const listing: HeldListing = { messages: [], gone: new Set() };
    (this.listings ??= []).push(listing.gone);
    try {
      await this.trimming;
      // Capped here too (section 4: at most SWITCHBOARD_HOLD_MAX, the oldest dropping first): a trim is started by a
      // hold only once the count says the cap is passed, and before the mailbox loaded that count is short.
      const held = await this.capped(await this.deps.held.list(this.user, now));
      this.heldCount = this.counted(held.length);
      listing.messages = held.map((h) => h.msg);
      return listing;
    } catch (e) {
      this.routed(listing);
      throw e;
    }
  }

  /** False when `id` stopped being held since `listing` began, or its drop from the store is under way. */
  stillHeld(listing: HeldListing, id: string): boolean {
    return !listing.gone.has(id) && !this.dropping?.has(id);
  }

  /** A count read from the store, plus the holds it cannot have yet: an over-count costs a replay that finds less. */
  private counted(stored: number): number {
    return stored + this.holding;
  }

  /** The listing was routed (or given up): it no longer needs to hear of drops. */
  routed(listing: HeldListing): void {
    const i = this.listings?.indexOf(listing.gone) ?? -1;
    if (i < 0) return;
    this.listings!.splice(i, 1);
    if (this.listings!.length === 0) this.listings = undefined; // a live actor with no replay under way pays for no array
  }

  /**
   * Drops `ids` from the store, telling the open listings first; while the drop is under way a listing read
   * meanwhile (the cluster's store answers from JetStream) is filtered too. Rejects as the store's drop does.
   */
  private async dropFromStore(ids: readonly string[]): Promise<number> {
    if (this.listings !== undefined) for (const gone of this.listings) for (const id of ids) gone.add(id);
    const dropping = (this.dropping ??= new Map());
    for (const id of ids) dropping.set(id, (dropping.get(id) ?? 0) + 1);
    try {
      return await this.deps.held.drop(this.user, ids);
    } finally {
      for (const id of ids) {
        const n = dropping.get(id)! - 1;
        if (n === 0) dropping.delete(id);
        else dropping.set(id, n);
      }
      if (dropping.size === 0 && this.dropping === dropping) this.dropping = undefined;
    }
  }

  /** These held messages reached the user, were read or expired: no longer held. */
  async drop(ids: readonly string[], why: 'delivered' | 'read'): Promise<void> {
    const dropped = await this.dropFromStore(ids);
    if (dropped > 0) this.deps.metrics.heldReleased.inc({ why }, dropped);
    this.heldCount = this.counted(await this.deps.held.count(this.user, Date.now()));
    this.gauge();
  }

  /**
   * `id` reached the user through its ingress copy (a settle lost to kill -9 hands out a message that is held too):
   * no longer held if it was. Only called while something is held, so it costs nothing otherwise.
   */
  async dropIfHeld(id: string): Promise<void> {
    if ((await this.dropFromStore([id])) === 0) return; // not held: nothing to count again (the cluster's count reads JetStream)
    this.deps.metrics.heldReleased.inc({ why: 'delivered' });
    this.heldCount = this.counted(await this.deps.held.count(this.user, Date.now()));
    this.gauge();
  }

  /**
   * A message was routed to a device: it counts as unread unless read already (at once, so the badge of a push sent
   * meanwhile counts it; `undelivered` takes it back if it reached no device).
   */
  delivered(id: string): void {
    if (!markDelivered((this.state ??= emptyReadState()), id)) return;
    if (!this.loaded) {
      this.early.push({ delivered: id }); // stored once the load has read what is there
      return;
    }
    this.save({ delivered: id }, false)?.catch((err: unknown) => this.deps.log.error({ err, user: this.user }, 'unread mark not stored'));
  }

  /**
   * A message counted by `delivered` reached no device in the end (every push failed, so it is held instead): it
   * leaves `unread` and the badge. Costs one lookup when it was not counted (the common case: it reached the user).
   */
  undelivered(id: string): void {
    if (!this.loaded) {
      this.early.push({ undelivered: id });
      return;
    }
    if (this.state === undefined || !unmarkDelivered(this.state, id)) return;
    this.save({ undelivered: id }, false)?.catch((err: unknown) => this.deps.log.error({ err, user: this.user }, 'unread mark not stored'));
  }

  /** Section 4 read sync: the ids leave `unread` (durably) and are no longer held. Returns the new badge. */
  async read(ids: readonly string[]): Promise<number> {
    if (!(await this.load(Date.now()))) throw new Error('the read state could not be loaded');
    markRead((this.state ??= emptyReadState()), ids);
    await this.save({ read: ids }, true);
    if (this.heldCount > 0) {
      const dropped = await this.dropFromStore(ids);
      if (dropped > 0) {
        this.deps.metrics.heldReleased.inc({ why: 'read' }, dropped);
        this.heldCount = this.counted(await this.deps.held.count(this.user, Date.now()));
        this.gauge();
      }
    }
    return this.unread;
  }

  private save(change: ReadChange, durable: boolean): Promise<void> | undefined {
    return this.deps.held.saveReads(this.user, (this.state ??= emptyReadState()), change, durable);
  }

  private async trim(now: number): Promise<void> {
    try {
      const held = await this.capped(await this.deps.held.list(this.user, now));
      this.heldCount = this.counted(held.length);
    } catch (err) {
      this.deps.log.error({ err, user: this.user }, 'dropping the oldest held messages failed');
    }
  }

  /** `held` (accept order) without its oldest past SWITCHBOARD_HOLD_MAX, which are dropped from the store first. */
  private async capped(held: HeldMessage[]): Promise<HeldMessage[]> {
    const excess = held.length - this.deps.holdMax;
    if (excess <= 0) return held;
    await this.dropFromStore(held.slice(0, excess).map((h) => h.msg.id));
    this.deps.metrics.heldReleased.inc({ why: 'over_cap' }, excess);
    this.gauge();
    return held.slice(excess);
  }

  private gauge(): void {
    this.deps.metrics.heldMessages.set(this.deps.held.heldTotal);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    timer.unref?.();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A listing of held messages for one replay (`UserMailbox.list`), open until `UserMailbox.routed`. */
export interface HeldListing {
  /** In accept order, as the store had them when read. */
  messages: ChatMessage[];
  /** Ids that stopped being held since the listing began. */
  readonly gone: Set<string>;
}
