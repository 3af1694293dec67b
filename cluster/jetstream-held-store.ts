import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { Packr } from 'msgpackr';
import { partitionOf } from '../bus/subjects.js';
import { ensureStream } from './jetstream-setup.js';
import { JetStreamPublisher } from './jetstream-publisher.js';
import { READ_PUT_DELAY_MS, ReadStateWriter } from './read-state-writer.js';
import { acceptOrderFor, SwitchboardError, MAX_TTL_SECONDS } from '../protocol/index.js';
import { applyChange, copyReadState, emptyReadState, fromRecord, toRecord } from '../store/read-state.js';
import type { HeldMessage, HeldStore, ReadChange, ReadState, ReadStateRecord } from '../store/types.js';

const packr = new Packr({ useRecords: false });

/**
 * Revisions the reads bucket keeps per key (KV `history`, JetStream's `max_msgs_per_subject`; 64 is the KV maximum):
 * a user's changes key holds the puts of changes made on the last whole state (at most MAX_CHANGE_PUTS from this
 * node, and room for a few late ones of the node before). A bucket made with less is raised to this at open.
 */
export const READS_HISTORY = 64;

/**
 * A put of changes (cluster/read-state-writer.ts) under the user's changes key: `base` is the stream sequence (KV
 * revision) of the whole state they were made on, under the user's state key.
 */
interface ReadChangesRecord {
  base: number;
  changes: ReadChange[];
}

/** An empty value: put as a rollup under a changes key, it clears the key (KV puts, unlike purges, need no extra header). */
const CLEARED = new Uint8Array(0);

export interface JetStreamHeldStoreOptions {
  prefix: string;
  partitions: number;
  /** SWITCHBOARD_HOLD_MAX: the stream's `max_msgs_per_subject`, so JetStream itself drops a user's oldest first. */
  holdMax: number;
  replicas?: number;
  /** Users whose held ids stay cached on this node; the least recently loaded go first. Default 10000. */
  cachedUsers?: number;
  /** How long a hold or a read-state write waits for JetStream's answer, ms. Default 5000 (nats.js's default). */
  publishTimeoutMs?: number;
  /** How long unread marks wait to be put together, ms (cluster/read-state-writer.ts). Default READ_PUT_DELAY_MS. */
  readPutDelayMs?: number;
}

/** What this node knows of one user's held messages: id -> stream sequence, expiry, accept time. */
type UserIndex = Map<string, { seq: number; exp: number; at: number }>;

/**
 * Held messages for the cluster: the stream `<prefix>_held` with one subject per user,
 * `<prefix>.held.<partition>.<base64url(user)>`, one JetStream message per held message; read states in the KV
 * bucket `<prefix>_reads`: the user's last whole state under `u.<base64url(user)>`, and the puts of changes made on
 * it while the user was busy under `c.<base64url(user)>` (cluster/read-state-writer.ts, READS_HISTORY).
 *
 * A stream rather than a KV because a held backlog is a queue per user, and a stream gives that directly: the
 * stream sequence is the accept order, `max_msgs_per_subject` = SWITCHBOARD_HOLD_MAX drops a user's oldest first on
 * the server, `max_age` bounds every TTL, a user's backlog is read by one filtered ordered consumer, and each message
 * is replicated and survives a node failover like the ingress. A KV would need one key per message plus our own
 * ordering and cap, and a value per user would outgrow NATS's 1 MB message limit at 1,000 held messages.
 * Only the owner of a user's partition writes; ids are cached per user and reloaded whenever a user actor starts.
 */
export class JetStreamHeldStore implements HeldStore {
  readonly stream: string;
  private readonly cache = new Map<string, UserIndex>();
  /** Reads of a user's index under way for `hold` and `drop` (loadIndex). */
  private readonly indexLoads = new Map<string, Promise<UserIndex>>();
  private total = 0;
  /** Read states are put whole, coalesced per user and capped per node (issue 13; see ReadStateWriter). */
  private readonly readsWriter: ReadStateWriter;

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
    private readonly publisher: JetStreamPublisher,
    /** `$KV.<bucket>.`: a read state is put as a plain JetStream publish to this + key. */
    private readonly readsSubject: string,
    private readonly opts: Required<JetStreamHeldStoreOptions>,
  ) {
    this.stream = heldStream(opts.prefix);
    this.readsWriter = new ReadStateWriter(async ({ user, state, changes, base, clearBase }) => {
      try {
        if (changes !== undefined) {
          await publisher.publish(readsSubject + changesKey(user), packr.pack({ base, changes }));
          return undefined;
        }
        // Encoded before the first await: the state keeps changing. A rollup (`Nats-Rollup: sub`): the key keeps only it.
        const ack = await publisher.publish(readsSubject + readsKey(user), packr.pack(toRecord(state)), undefined, true);
        // The changes made on the state before are not read any more (their base is not this one): clear them, not
        // waited for (they only take room; a crash before this leaves them, and they are not read either).
        if (clearBase !== undefined) publisher.publish(readsSubject + changesKey(user), CLEARED, undefined, true).catch(() => undefined);
        return ack.seq;
      } catch (e) {
        throw new SwitchboardError('store_failed', `JetStream did not store the read state: ${(e as Error).message}`, { cause: e });
      }
    }, { delayMs: opts.readPutDelayMs });
  }

  /** KV puts of read states sent since the store opened (tests and benches: how well saves coalesce). */
  get readsPuts(): number {
    return this.readsWriter.puts;
  }

  static async open(nc: NatsConnection, kv: KV, o: JetStreamHeldStoreOptions): Promise<JetStreamHeldStore> {
    const opts: Required<JetStreamHeldStoreOptions> = { replicas: 1, cachedUsers: 10_000, publishTimeoutMs: 5000, readPutDelayMs: READ_PUT_DELAY_MS, ...o };
    const jsm = await jetstreamManager(nc);
    // The bucket's own subject (`$KV.<bucket>.>`), read from its stream rather than assumed.
    const status = await kv.status();
    const kvSubject = status.streamInfo.config.subjects?.[0] ?? '';
    if (!kvSubject.endsWith('.>')) throw new Error(`reads bucket has an unexpected subject: ${kvSubject}`);
    if (status.history < READS_HISTORY || !status.streamInfo.config.allow_rollup_hdrs) {
      // A bucket made by an earlier version (history 1): with it, a put of changes would push out the whole state.
      await jsm.streams.update(status.streamInfo.config.name, { ...status.streamInfo.config, max_msgs_per_subject: READS_HISTORY, allow_rollup_hdrs: true });
    }
    const config = {
      name: heldStream(opts.prefix),
      subjects: [`${opts.prefix}.held.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: opts.replicas,
      max_msgs_per_subject: opts.holdMax,
      discard: DiscardPolicy.Old,
      max_age: MAX_TTL_SECONDS * 1_000_000_000,
      duplicate_window: 120_000_000_000,
    };
    await ensureStream(jsm, config);
    // The publisher (a subscription and a status listener on `nc`) only once nothing can fail: start-up retries a
    // failed open, and each attempt left one behind.
    return new JetStreamHeldStore(jetstream(nc), jsm, kv, new JetStreamPublisher(nc, opts.publishTimeoutMs), kvSubject.slice(0, -1), opts);
  }

  subject(user: string): string {
    return `${this.opts.prefix}.held.${partitionOf(user, this.opts.partitions)}.${Buffer.from(user, 'utf8').toString('base64url')}`;
  }

  get heldTotal(): number {
    return this.total;
  }

  async list(user: string, now: number): Promise<HeldMessage[]> {
    const held = await this.load(user);
    const live = held.filter((h) => h.expiresAt > now);
    const expired = held.filter((h) => h.expiresAt <= now).map((h) => h.msg.id);
    if (expired.length > 0) void this.drop(user, expired).catch(() => undefined);
    // Accept order by the ingress sequence (acceptOrderFor): by acceptedAt alone, gateways' clocks 50 ms apart
    // replayed messages sent 5 ms apart out of order.
    const order = acceptOrderFor(live.map((h) => h.msg));
    return live.sort((a, b) => order(a.msg, b.msg));
  }

  async count(user: string, now: number): Promise<number> {
    return (await this.list(user, now)).length;
  }

  async hold(user: string, held: HeldMessage): Promise<void> {
    const index = this.cache.get(user) ?? (await this.loadIndex(user));
    if (index.has(held.msg.id)) return;
    try {
      // Deduplicated per acceptance, not per id: a retried publish of this hold is stored once, while the same id
      // accepted anew (past the ingress's dedupe window, its own acceptedAt) after its first copy was dropped is held
      // again; keyed by id alone, JetStream answered it duplicate within the stream's 120 s window and it was lost.
      const ack = await this.publisher.publish(this.subject(user), packr.pack(held), `${this.subject(user)}:${held.msg.id}:${held.msg.acceptedAt}`);
      // The index in the cache now, not the one read before the publish: a list() meanwhile replaced it (load), and
      // an entry written to the old one would be missing from the new, so a later drop would leave the message held.
      // A user evicted from the cache meanwhile is read from the stream again at the next call.
      const current = this.cache.get(user);
      if (current !== undefined && !current.has(held.msg.id)) {
        current.set(held.msg.id, { seq: ack.seq, exp: held.expiresAt, at: held.msg.acceptedAt });
        this.total++;
      }
    } catch (e) {
      throw new SwitchboardError('store_failed', `JetStream did not store the held message: ${(e as Error).message}`, { cause: e });
    }
  }

  async drop(user: string, ids: readonly string[]): Promise<number> {
    const index = this.cache.get(user) ?? (await this.loadIndex(user));
    let dropped = 0;
    for (const id of ids) {
      const e = index.get(id);
      if (!e) continue;
      dropped++;
      try {
        await this.jsm.streams.deleteMessage(this.stream, e.seq, false);
      } catch (err) {
        if (!/no message found|not found/i.test(String(err))) throw err; // already gone (max_msgs_per_subject, max_age)
      }
      // Both indexes: a list() during the delete may have put in the cache a new one that still holds it.
      const current = this.cache.get(user);
      if (index.delete(id) && current === index) this.total--;
      if (current !== undefined && current !== index && current.delete(id)) this.total--;
    }
    return dropped;
  }

  async reads(user: string): Promise<ReadState> {
    // A state still being written here is newer than what the bucket has (only this node writes the user).
    const pending = this.readsWriter.pending(user);
    if (pending) return copyReadState(pending);
    const [whole, last] = await Promise.all([this.kv.get(readsKey(user)), this.kv.get(changesKey(user))]);
    const base = whole?.revision ?? 0;
    const state = whole && whole.operation === 'PUT' && whole.value.length > 0 ? fromRecord(packr.unpack(whole.value) as ReadStateRecord) : emptyReadState();
    // Changes made on this very state are left only when its node stopped while the user was busy (a quiet user's
    // last put is whole); those made on another (an older state, a late put of a node before) are not read.
    if (!last || last.operation !== 'PUT' || last.value.length === 0 || (packr.unpack(last.value) as ReadChangesRecord).base !== base) return state;
    let seen = 0;
    const history = await this.kv.history({ key: changesKey(user) });
    // A history whose messages a rollup removed while it was read waits for them forever: stopped, it ends short.
    const stop = setTimeout(() => history.stop(), this.opts.publishTimeoutMs);
    try {
      for await (const r of history) {
        seen = r.revision;
        if (r.operation !== 'PUT' || r.value.length === 0) continue;
        const rec = packr.unpack(r.value) as ReadChangesRecord;
        if (rec.base === base) for (const c of rec.changes) applyChange(state, c);
        if (seen >= last.revision) break;
      }
    } finally {
      clearTimeout(stop);
    }
    // A history that ended short (stopped, or nats.js ending it when its consumer stalls) would be a wrong state.
    if (seen < last.revision) throw new SwitchboardError('store_failed', `the read-state changes of ${user} were read only up to revision ${seen} of ${last.revision}`);
    return state;
  }

  /**
   * Puts the user's read state in the KV bucket: the whole state, or the changes since the previous put while the
   * user is busy (cluster/read-state-writer.ts). Every delivery changes it (its unread mark), and a put per delivery
   * cost the node and nats-server about as much as the message itself (issue 13), so puts are coalesced: one in
   * flight per user, READ_PUTS_IN_FLIGHT per node. A durable save (a `read`) resolves once its state or a newer one
   * is stored.
   */
  saveReads(user: string, state: ReadState, change: ReadChange, durable: boolean): Promise<void> {
    return this.readsWriter.save(user, state, durable, change);
  }

  /** Read-state puts are sent only for users `mayWrite` allows when they go out (the cluster's lease fence). */
  fenceReads(mayWrite: (user: string) => boolean): void {
    this.readsWriter.mayWrite = mayWrite;
  }

  /**
   * The read-state puts of the users matching `match` go out now, and this resolves once they are answered: a
   * partition handed off (cluster/partition-host.ts), so its next owner reads what this node wrote.
   */
  flushReads(match: (user: string) => boolean): Promise<void> {
    return this.readsWriter.flush(match);
  }

  /**
   * Forgets the read-state puts still waiting for the users matching `match`: a partition whose lease was lost; its
   * next owner writes those users now, and a late put from here would overwrite a newer state with an older one.
   */
  discardReads(match: (user: string) => boolean): void {
    this.readsWriter.discard(match, new SwitchboardError('store_failed', 'the partition moved to another node before the read state was stored'));
  }

  /** Puts what waits, waits until every read-state put was answered (`flush` of every user), then stops. */
  async close(): Promise<void> {
    await this.readsWriter.flush();
    await this.publisher.close();
  }

  /** Reads the user's whole backlog through an ordered consumer filtered on the user's subject, and caches its ids. */
  /**
   * The user's index, read from the stream once for all the calls that find it missing meanwhile: they wait on one read
   * and go on in the order they came. Separate reads finish in any order, and holds that each waited for their own
   * read published out of accept order, so `max_msgs_per_subject` dropped a newer message and kept an older one
   * (section 4: "the oldest dropping first"; seen on a node started with its nats-server, where first reads are slow).
   */
  private loadIndex(user: string): Promise<UserIndex> {
    let loading = this.indexLoads.get(user);
    if (loading === undefined) {
      loading = this.load(user).then(() => this.cache.get(user)!).finally(() => this.indexLoads.delete(user));
      this.indexLoads.set(user, loading);
    }
    return loading;
  }

  private async load(user: string): Promise<HeldMessage[]> {
    const subject = this.subject(user);
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: subject });
    const n = info.state.subjects?.[subject] ?? 0;
    const index: UserIndex = new Map();
    const out: HeldMessage[] = [];
    if (n > 0) {
      const consumer = await this.js.consumers.get(this.stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
      const iter = await consumer.fetch({ max_messages: n, expires: 5000 });
      for await (const m of iter) {
        const held = packr.unpack(m.data) as HeldMessage;
        if (!index.has(held.msg.id)) {
          index.set(held.msg.id, { seq: m.seq, exp: held.expiresAt, at: held.msg.acceptedAt });
          out.push(held);
        }
        if (m.info.pending === 0) break;
      }
    }
    // A hold confirmed while this read was under way went into the index cached then; one published after the
    // stream's state was read (seq past its last_seq) may be missing from what the fetch saw: keep it, or a drop of it
    // would find nothing and leave it held.
    const before = this.cache.get(user);
    if (before !== undefined) for (const [id, e] of before) if (e.seq > info.state.last_seq && !index.has(id)) index.set(id, e);
    this.total += index.size - (before?.size ?? 0);
    this.cache.delete(user);
    this.cache.set(user, index);
    if (this.cache.size > this.opts.cachedUsers) {
      const [oldest, idx] = this.cache.entries().next().value!;
      this.total -= idx.size;
      this.cache.delete(oldest);
    }
    return out;
  }
}

/** A user's whole read state (the key earlier versions put every state under). */
function readsKey(user: string): string {
  return `u.${Buffer.from(user, 'utf8').toString('base64url')}`;
}

/**
 * A user's puts of changes, apart from the whole state: a node of an earlier version reads only `readsKey`, so during
 * a rolling upgrade it finds the last whole state (missing at most the changes since), never a record it cannot read.
 */
function changesKey(user: string): string {
  return `c.${Buffer.from(user, 'utf8').toString('base64url')}`;
}

/** The stream's name for a subject prefix. */
function heldStream(prefix: string): string {
  return `${prefix}_held`;
}
