import type { BoundedIdSet } from './bounded-id-set.js';
import type { ChatMessage, DeviceRegistration, MobileOs, SwitchboardError, TokenRemovedReason, UserPolicy } from '../protocol/index.js';

/** A mobile device as the registry keeps it. `token` is absent once removed (dead, moved, unregistered, pruned). */
export interface DeviceRecord {
  device: string;
  os: MobileOs;
  token?: string;
  app?: string;
  /** Epoch ms of the last put (the token was stored) or token removal. */
  updatedAt: number;
  /** Epoch ms a session of this device last opened while it had a token, to within SEEN_RESOLUTION_MS; absent = not since stored. */
  seenAt?: number;
}

/** A token the registry removed, for the `token_removed` event and the owning actor. `token` never goes to logs or events. */
export interface TokenRemoval {
  user: string;
  device: string;
  os: MobileOs;
  token: string;
  reason: TokenRemovedReason;
}

/** Called once per removed token, after the removal is durable; must not throw. */
export type TokenRemovalListener = (removal: TokenRemoval) => void;

/** `seen` writes only when the stored time is at least this old: a token's age is kept to within a day. */
export const SEEN_RESOLUTION_MS = 24 * 3600 * 1000;

/**
 * Durable device tokens (section 3: `PUT`/`DELETE /v1/users/{u}/devices/{d}`, the `register` and `unregister`
 * frames). Embedded: `FileDeviceRegistry`; cluster: a JetStream KV one. One contract suite runs against both.
 * A token is held by one (user, device) at a time (section 3). Every token removed is reported to the
 * registry's `TokenRemovalListener` (given at construction) once it is durable.
 */
export interface DeviceRegistry {
  /**
   * Resolves once the record is durable. The token is removed from any other (user, device) holding it
   * (reason `moved`) before this resolves. A different token the device held before is reported too (reason
   * `replaced`; section 3: every token Switchboard removes is published, so chat servers drop it as well);
   * storing the device's current token again reports nothing.
   */
  put(user: string, device: string, reg: DeviceRegistration): Promise<DeviceRecord>;
  /** Resolves true when a device was removed (its token, if any, is reported `deleted`). */
  remove(user: string, device: string): Promise<boolean>;
  /**
   * Clears the token only while it still equals `token`, so a dead-token answer never erases a newer one.
   * The device stays (without a token). `reason` defaults to `dead`.
   */
  clearToken(user: string, device: string, token: string, reason?: TokenRemovedReason): Promise<boolean>;
  /** A session of the device opened at `at` (epoch ms): its token counts as seen (kept to SEEN_RESOLUTION_MS). */
  seen(user: string, device: string, at: number): Promise<void>;
  /** Clears every token neither stored nor seen since `before` (epoch ms), reported `pruned`; resolves with how many. */
  prune(before: number): Promise<number>;
  list(user: string): Promise<DeviceRecord[]>;
  close(): Promise<void>;
}

export type AcceptResult = 'accepted' | 'duplicate';

/** What `Ingress.acceptMany` answers for one message: its `AcceptResult`, or the error its `accept` would have rejected with. */
export type AcceptOutcome = AcceptResult | SwitchboardError;

/**
 * Durable ingress, one shape for both modes (STYLE.md "one shape per port"): a message is accepted (202) only once it
 * is on disk (embedded `FileInbox`) or stored by JetStream (cluster `JetStreamIngress`), and it stays there until
 * the owner says it is `done` with it. One contract suite (test/contracts/ingress.contract.ts) runs against both.
 */
export interface Ingress {
  /**
   * Makes `msg` durable. Resolves `accepted` (202) or `duplicate` (200, an `id` seen within the dedupe window).
   * Rejects with `SwitchboardError` `store_failed` / `unavailable` (503: not accepted, never delivered) or
   * `shutting_down` once closed.
   */
  accept(msg: ChatMessage): Promise<AcceptResult>;
  /**
   * `accept` for the messages of one batch (section 3, `POST /v1/messages/batch`). Resolves, never rejects, with one
   * outcome per message in order, once each is durable or refused: exactly what `accept` of each message, called in
   * this order, would have resolved or rejected with (an id repeated within the batch is `duplicate` of its first
   * copy; a refused message does not affect the others). Embedded: one log write for the batch; JetStream: one
   * `accept` per message (store/accept-each.ts).
   */
  acceptMany(msgs: readonly ChatMessage[]): Promise<AcceptOutcome[]>;
  /**
   * Starts handing accepted messages to `handler`: first those accepted earlier and not yet `done` (after a restart,
   * or left by a previous owner), then each new one, in accept order per partition. `partition` limits it to one
   * user partition (cluster: the partitions this node owns); left out, every partition (embedded).
   */
  consume(handler: (msg: ChatMessage) => void, partition?: number): Promise<void>;
  /**
   * Stops handing messages of `partition` (cluster: handed off or lease lost; every partition when left out). Those
   * not yet `done` stay stored and go to the next consumer; `done` for them is ignored from now on.
   */
  release(partition?: number): Promise<void>;
  /**
   * Stops handing out new messages of `partition` while `done` still finishes those handed out, until `release`
   * (cluster: a partition being handed off lets its deliveries be acked first, so its next owner does not send them
   * again). Absent where there is nothing to hand off (embedded).
   */
  pause?(partition: number): void;
  /**
   * The owner is done with message `id`: it reached a final outcome on every target (acked, pushed, failed, held
   * durably elsewhere, or undeliverable). It is not handed out again. Unknown ids are ignored.
   */
  done(id: string): void;
  /** Flushes and closes; pending accepts resolve or reject first. */
  close(): Promise<void>;
}

/** One held message (PROTOCOL.md section 4, held messages) and when it stops being held, epoch ms. */
export interface HeldMessage {
  msg: ChatMessage;
  expiresAt: number;
}

/**
 * The read state of one user (section 4, read sync). `unread` is the badge: ids delivered and not read, oldest first.
 * `read` remembers ids read recently, so a read that arrives before its delivery keeps that message out of `unread`.
 * Hashed sets, not arrays: every delivery asks "read or unread already?" of up to 1,500 ids, which an array answers by
 * a scan (issue 13: 8% of the node's CPU once users had ~400 unread); bounded ones (`BoundedIdSet`), not `Set`s: a
 * full `Set` changed by every delivery cost ~12% of the node's CPU per message (see bounded-id-set.ts).
 * Changed only through store/read-state.ts, so both stores and the actor apply the same bounds; stored as arrays
 * (`ReadStateRecord`, read-state.ts `toRecord` / `fromRecord`).
 */
export interface ReadState {
  unread: BoundedIdSet;
  read: BoundedIdSet;
}

/** A read state as the stores write it (msgpack has no sets): both lists oldest first. */
export interface ReadStateRecord {
  unread: string[];
  read: string[];
}

/** One change of a read state, as the file store logs it (the KV store writes the whole state instead). */
/**
 * What changed in a read state (section 4): a delivery counted as unread, a counted one that in the end reached no
 * device (`undelivered`: its pushes failed, it was held instead), or ids read.
 */
export type ReadChange = { delivered: string } | { undelivered: string } | { read: readonly string[] };

/**
 * Durable per-user mailbox state: held messages and the read state (badge). Written only by the owner of the user
 * (the user actor), so no method needs compare-and-set. Embedded: `FileHeldStore` (an append-only checksummed log in
 * the data dir); cluster: `JetStreamHeldStore` (a stream with one subject per user, plus a KV bucket for read states).
 * One contract suite (test/contracts/held-store.contract.ts) runs against both.
 */
export interface HeldStore {
  /** The user's held messages in accept order (`acceptedAt`, then hold order); expired ones (`expiresAt <= now`) left out. */
  list(user: string, now: number): Promise<HeldMessage[]>;
  /** How many unexpired messages are held for the user (`GET /v1/users/{u}` `held`). */
  count(user: string, now: number): Promise<number>;
  /**
   * Holds `held.msg` for `user`; resolves once durable (before the ingress is told `done`). Holding an id already
   * held keeps the first copy. Rejects with `SwitchboardError` `store_failed` when it could not be made durable.
   */
  hold(user: string, held: HeldMessage): Promise<void>;
  /**
   * These ids are no longer held (routed and reached, read, expired, over the cap); unknown ids are ignored. Resolves
   * once durable, with how many of `ids` were held (so a caller recounts only when something went).
   */
  drop(user: string, ids: readonly string[]): Promise<number>;
  /** The user's read state; empty for a user never seen. */
  reads(user: string): Promise<ReadState>;
  /**
   * Stores `state` (already changed by `change`). `durable: true` resolves once it is on disk / in JetStream (a
   * `read`); false lets it ride with the next synced write (a delivery's unread mark: a crash loses at most that mark).
   * A store may return `undefined` when there is nothing to wait for (a lazy mark queued in memory): this runs for
   * every delivered message, and a promise plus the caller's `catch` per delivery showed in issue 13's profiles.
   */
  saveReads(user: string, state: ReadState, change: ReadChange, durable: boolean): Promise<void> | undefined;
  /** Messages held in this store, for the `switchboard_held_messages` gauge (cluster: those of users loaded here). */
  readonly heldTotal: number;
  close(): Promise<void>;
}

/**
 * Durable per-user delivery policies (PROTOCOL.md section 3, `GET`/`PUT /v1/users/{u}/policy`). Embedded:
 * `FilePolicyStore` in the data dir; cluster: `KvPolicyStore` in a JetStream KV bucket. One contract suite
 * (test/contracts/policy-store.contract.ts) runs against both.
 */
export interface PolicyStore {
  /** The stored policy, or undefined when the user never set one (the default applies). */
  get(user: string): Promise<UserPolicy | undefined>;
  /** Replaces the user's policy; resolves once it is durable. Rejects with `store_failed` or `shutting_down`. */
  put(user: string, policy: UserPolicy): Promise<void>;
  close(): Promise<void>;
}
