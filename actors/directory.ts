import type { OwnerMessage, OwnerQuery, OwnerReply } from '../protocol/index.js';
import type { Timer } from '../base/clock.js';
import { DeadlineQueue } from '../base/deadline-queue.js';
import { DecisionHistory } from './decision-history.js';
import { UserActor, type AckDue, type UserActorDeps, type UserActorMessage } from './user-actor.js';
import { hasLiveSessions, newUserState, type UserState } from './user-state.js';

/**
 * Everything the routing core needs: bus, registry, push sink, clock, timings (SWITCHBOARD_ACK_TIMEOUT_MS,
 * SWITCHBOARD_PRESENCE_TTL_MS, SWITCHBOARD_PUSH_DELAY_MS, SWITCHBOARD_PASSIVATE_AFTER_MS), metrics, log, `done`
 * (the ingress may forget a message) and `onRouted` (publish `switchboard.events.routed`).
 */
export interface DirectoryDeps extends UserActorDeps {
  /** An actor with nothing in flight and no timers stops after this long idle (SWITCHBOARD_PASSIVATE_AFTER_MS, default 60000). */
  passivateAfterMs: number;
  /** How long `answer` waits for a user actor before answering `unavailable`, ms. Default 2000. */
  queryTimeoutMs?: number;
  /** Bound of all users' decision histories together, bytes (SWITCHBOARD_DECISION_HISTORY_BYTES, default 128 MiB). */
  decisionHistoryBytes?: number;
  /**
   * Cluster: the decisions a previous owner saved for `user` at a graceful handoff (cluster/decision-handoff.ts), read
   * once per user and node, before its first `decisions_query` is answered or its history is saved at a handoff
   * (`mergePreviousDecisions`), and merged in front of this node's. Must
   * not reject (an empty list when there is none or it cannot be read in time).
   */
  loadDecisions?: (user: string) => Promise<string[]>;
}

/** How long `answer` waits for a user actor before answering `unavailable`. */
export const DEFAULT_QUERY_TIMEOUT_MS = 2000;

/**
 * A live actor: its behaviour and its mailbox. Messages run one at a time, in arrival order; the next starts only
 * once the previous one's `handle` settled (it may await the device registry on a user's first message).
 */
interface Resident {
  actor: UserActor;
  /** Waiting messages from `head` on (taken ones are cleared, not shifted out); created per burst, dropped when drained. */
  queue?: (UserActorMessage | undefined)[];
  head: number;
  /** A drain of this mailbox is scheduled or running. */
  running: boolean;
  /** Dispatched and not yet finished (queued + running). */
  inFlight: number;
  idleSince: number;
  /** Out of the map (passivated or evicted): queued messages are dropped, a running drain stops. */
  stopped: boolean;
}

/**
 * Messages all mailboxes together run in one turn of the event loop at most (`spend`); the rest waits for the next
 * turn, so timers (lease renewals, ack timeouts) and socket reads get their turn however large a burst a socket read
 * brought.
 */
export const TURN_BUDGET = 256;

/** How often `settled` looks again, ms. */
export const SETTLE_POLL_MS = 20;

/** Queued `read` messages run together as one at most (UserDirectory.withQueuedReads). */
export const MAX_MERGED_READS = 256;

type ReadMessage = Extract<UserActorMessage, { type: 'read' }>;

/** Node ids are few and repeat in every session: one copy each (bounded in case ids churn). */
const MAX_INTERNED_NODES = 1024;

/**
 * The routing core behind the owner subjects, bus-agnostic: the composition root subscribes it to the partitions
 * this node owns and feeds it `OwnerMessage`s and `OwnerQuery`s (PROTOCOL.md sections 2-4).
 *
 * One actor per resident user, with its own serialized mailbox, spawned on first message and passivated when idle.
 * A message is never lost to passivation: an actor is stopped only with nothing in flight, and it leaves the map in
 * the same synchronous step, so the next message spawns anew.
 *
 * The mailbox is ours, not nact's (issue 13, measured in bench/README.md): a nact actor cost ~2.1 KiB per live
 * user (its `Actor` with two child maps, reference, path, `Denque`, the kept `Immediate`) and a `setImmediate` plus
 * an async handler per message. Here a mailbox is a few fields on `Resident`, and a message is dispatched in a
 * microtask (never inside the caller's stack, as with nact): one microtask per burst per user, not one
 * `setImmediate` per message. Serialization, spawn-on-first-message and passivation are unchanged.
 */
export class UserDirectory {
  private readonly live = new Map<string, Resident>();
  /** Passivated users that still have connected sessions: their compact state is all that stays. */
  private readonly kept = new Map<string, UserState>();
  private readonly nodes = new Map<string, string>();
  private inFlightTotal = 0;
  private idleWaiters: (() => void)[] = [];
  private sweepTimer?: Timer;
  private stopped = false;
  /** Decisions outlive the actors (issue 10 part 4); one bounded store for every user of this node. */
  readonly history: DecisionHistory;
  /**
   * The partitions (their user matchers) evicted while a lookup of `mergePrevious` was under way: a previous owner's
   * decisions that arrive after their user's partition left are not merged. Emptied when no lookup is under way.
   */
  private evictedDuringLoads: ((user: string) => boolean)[] = [];
  private loadsUnderWay = 0;
  private readonly deps: DirectoryDeps;
  /** Every live actor's ack timeouts on one timer (issue 13), passed to the actors in `deps`. */
  private readonly ackDeadlines: DeadlineQueue<AckDue>;
  /** Messages this turn may still run (TURN_BUDGET), and mailboxes waiting for the next turn. */
  private budget = TURN_BUDGET;
  private budgetResetArmed = false;
  private deferred: Resident[] = [];
  /** Mailboxes that got a message while idle, run by `runReady` in one microtask. */
  private ready: Resident[] = [];
  private readyArmed = false;

  constructor(deps: DirectoryDeps) {
    this.history = deps.history ?? new DecisionHistory(deps.decisionHistoryBytes);
    this.ackDeadlines = new DeadlineQueue<AckDue>(deps.clock, deps.ackTimeoutMs, (due) => this.tell(due.user, { type: 'ack_due', id: due.id, device: due.device, seq: due.seq }));
    this.deps = { ...deps, history: this.history, ackDeadlines: this.ackDeadlines };
    this.scheduleSweep();
  }

  /** Gateway -> owner traffic and `route` for each accepted message (PROTOCOL.md sections 2-4). Never throws. */
  handle(msg: OwnerMessage): void {
    this.tell(msg.user, msg);
  }

  /**
   * Cluster: the gateway `node` is gone (cluster/membership.ts `gatewayGone`): each session it held that opened before
   * `before` (the gateway's clock, epoch ms; `Infinity` for all) is closed here as if the gateway had said so
   * (`session_close`, through each user's mailbox): a crashed gateway closes nothing, and its sessions stayed (a PC
   * `active` until stale, a phone online for good) and took deliveries that could only time out. Section 2: a session
   * that closes with deliveries unacked counts them as timed out at once, so they fall back now. Returns how many.
   */
  dropSessionsOf(node: string, before: number): number {
    const closes: OwnerMessage[] = [];
    const at = this.deps.clock.now();
    const collect = (user: string, state: UserState): void => {
      for (const pc of state.pcs ?? []) {
        if (pc.node === node && (pc.openedAt ?? -Infinity) < before) closes.push({ type: 'session_close', user, device: pc.device, sessionId: pc.sessionId, at });
      }
      for (const m of state.mobiles ?? []) {
        const s = m.session;
        if (s?.node === node && (s.openedAt ?? -Infinity) < before) closes.push({ type: 'session_close', user, device: m.device, sessionId: s.sessionId, at });
      }
    };
    for (const [user, r] of this.live) collect(user, r.actor.state);
    for (const [user, state] of this.kept) collect(user, state);
    for (const close of closes) this.handle(close);
    return closes.length;
  }

  /** `GET /v1/users/{user}` and `GET /v1/users/{user}/decisions` (section 3), answered by the user's actor. */
  answer(q: OwnerQuery): Promise<OwnerReply> {
    const timeoutMs = this.deps.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    if (q.type !== 'decisions_query' || this.deps.loadDecisions === undefined) return this.ask(q.user, q, timeoutMs);
    return this.mergePrevious(q.user).then(() => this.ask(q.user, q, timeoutMs));
  }

  /**
   * Cluster, before the histories of a partition handed off are saved for its next owner: merges in what the
   * previous owner saved for each of its users that has a history here and was never looked up. Without this a
   * chain of handoffs (A to B to C) lost A's decisions, as B's save of only its own replaced them in the bucket.
   * Resolves once every lookup ended (each within `LOAD_WAIT_MS`, cluster/decision-handoff.ts); never rejects.
   */
  mergePreviousDecisions(match: (user: string) => boolean): Promise<void> {
    return this.mergePreviousOf(this.history.usersOf(match));
  }

  /**
   * `mergePreviousDecisions` for these users (cluster: before their histories are written behind,
   * cluster/decision-write-behind.ts, so a save never replaces the previous owner's decisions with this node's alone).
   * Resolves once every lookup ended; never rejects.
   */
  mergePreviousOf(users: readonly string[]): Promise<void> {
    if (this.deps.loadDecisions === undefined) return Promise.resolve();
    return Promise.all(users.map((user) => this.mergePrevious(user))).then(() => undefined);
  }

  /**
   * Looks up `user`'s previous owner's decisions and merges them in front of this node's, unless its history here
   * has them already (the mark lives with the history: one dropped by the memory bound and made anew looks again);
   * never rejects. Two lookups at once merge the same decisions once (`DecisionHistory.merge` leaves out those held).
   */
  private mergePrevious(user: string): Promise<void> {
    if (this.history.merged(user)) return Promise.resolve();
    const from = this.evictedDuringLoads.length;
    this.loadsUnderWay++;
    return this.deps.loadDecisions!(user).then((older) => {
      // The user's partition evicted meanwhile: its next owner looks the user up itself.
      if (!this.evictedDuringLoads.slice(from).some((match) => match(user))) this.history.merge(user, older);
    }, () => undefined).finally(() => {
      if (--this.loadsUnderWay === 0) this.evictedDuringLoads = [];
    });
  }

  /** Spawned actors and users held in memory (also exported as gauges). */
  get stats(): { liveActors: number; residentUsers: number } {
    return { liveActors: this.liveActors, residentUsers: this.residentUsers };
  }

  /** Get-or-spawn, then put the message in the user's mailbox. */
  tell(user: string, msg: UserActorMessage): void {
    if (this.stopped) return;
    const r = this.live.get(user) ?? this.spawn(user);
    r.inFlight++;
    this.inFlightTotal++;
    (r.queue ??= []).push(msg);
    if (r.running) return;
    r.running = true;
    this.ready.push(r);
    if (this.readyArmed) return;
    this.readyArmed = true;
    queueMicrotask(this.runReady);
  }

  /**
   * Mailboxes that got a message while idle run in one microtask together (never inside the caller's stack): one
   * microtask per burst, not a closure, a microtask and an async frame per message (issue 13: the directory's
   * allocations were 14% of the node's per-message garbage).
   */
  private readonly runReady = (): void => {
    this.readyArmed = false;
    const ready = this.ready;
    this.ready = [];
    for (const r of ready) this.run(r);
  };

  /**
   * Runs the mailbox's messages one at a time until it is empty, this turn's budget is spent (it goes on in the next
   * turn, still `running`, order kept), or `handle` returns a promise (it goes on once that settled; later messages
   * queue meanwhile). Synchronous: the common messages need no promise (UserActor.handle).
   */
  private run(r: Resident): void {
    for (let q = r.queue; !r.stopped && q !== undefined && r.head < q.length; q = r.queue) {
      if (q[r.head] === undefined) {
        r.head++; // a read already run with an earlier one (withQueuedReads)
        continue;
      }
      if (!this.spend()) {
        compact(r); // a mailbox that never empties under load must not keep every message it ever took as a hole
        this.deferred.push(r);
        return;
      }
      let msg = q[r.head]!;
      q[r.head++] = undefined;
      if (msg.type === 'read') msg = this.withQueuedReads(r, msg);
      let waiting: unknown;
      try {
        waiting = r.actor.handle(msg); // a `void` return may still carry a value (`return this.deps.done(id)`)
      } catch (err) {
        this.failed(r, msg, err);
      }
      if (waiting instanceof Promise) {
        compact(r);
        waiting.then(() => this.resume(r), (err: unknown) => {
          this.failed(r, msg, err);
          this.resume(r);
        });
        return;
      }
      this.finished(r);
    }
    r.queue = undefined;
    r.head = 0;
    r.running = false;
  }

  /**
   * `first` and the `read` messages queued behind it, as one `reads` message (at most MAX_MERGED_READS), so they cost
   * one durable write: each read waits for its write before the next message runs, and a client sending reads faster
   * than one disk sync each (several sessions of a user, each within its frame rate) made the mailbox grow until the
   * process ran out of memory. `touch` messages (pings) between them are passed over and run after, as a read's own
   * touch does; any other message ends the run, so reads never move past a message whose order they matter to.
   */
  private withQueuedReads(r: Resident, first: ReadMessage): UserActorMessage {
    const q = r.queue!;
    let reads: ReadMessage[] | undefined;
    for (let i = r.head; i < q.length && (reads?.length ?? 1) < MAX_MERGED_READS; i++) {
      const next = q[i];
      if (next === undefined || next.type === 'touch') continue;
      if (next.type !== 'read') break;
      (reads ??= [first]).push(next);
      q[i] = undefined;
      this.finished(r); // counted in flight once each; the merged message counts as `first`
    }
    return reads === undefined ? first : { type: 'reads', reads };
  }

  private resume(r: Resident): void {
    this.finished(r);
    this.run(r);
  }

  private failed(r: Resident, msg: UserActorMessage, err: unknown): void {
    this.deps.log.error({ err, user: r.actor.user, type: msg.type }, 'user actor failed on a message');
  }

  /**
   * Takes one message from the budget; false when it is spent. Once half of it is spent, a `setImmediate` refills it
   * after this turn's timers and socket reads and runs the mailboxes that waited. So at most TURN_BUDGET messages run
   * between two refills (within one turn), and turns that run a few messages each schedule one refill per
   * TURN_BUDGET / 2 messages, not one per turn (an `Immediate` and a closure per turn were 6% of the node's
   * per-message garbage in issue 13's in-process benchmark).
   */
  private spend(): boolean {
    if (this.budget === 0) return false; // a refill is armed: it was at half
    if (--this.budget < TURN_BUDGET / 2 && !this.budgetResetArmed) {
      this.budgetResetArmed = true;
      setImmediate(this.nextTurn);
    }
    return true;
  }

  private readonly nextTurn = (): void => {
    this.budgetResetArmed = false;
    this.budget = TURN_BUDGET;
    const waiting = this.deferred;
    this.deferred = [];
    for (const r of waiting) this.run(r);
  };

  /** Asks the user's actor, timing out on the injected clock. */
  ask(user: string, query: OwnerQuery, timeoutMs: number): Promise<OwnerReply> {
    if (this.stopped) return Promise.resolve({ type: 'error', code: 'shutting_down', message: 'node is shutting down' });
    const { clock } = this.deps;
    return new Promise((resolve) => {
      let done = false;
      const timer = clock.setTimeout(() => {
        done = true;
        resolve({ type: 'error', code: 'unavailable', message: `user actor did not answer in ${timeoutMs} ms` });
      }, timeoutMs);
      this.tell(user, {
        type: 'ask', query, reply: (r) => {
          if (done) return;
          done = true;
          clock.clearTimeout(timer);
          resolve(r);
        },
      });
    });
  }

  /**
   * Resolves true once no live actor of a user matching `match` has a message queued or unfinished (routed, not yet
   * `done`: waiting for an ack, a push delay or a vendor answer), false after `timeoutMs` (ms; checked every
   * SETTLE_POLL_MS on the injected clock). A partition handed off waits here before it lets its ingress go, so
   * deliveries already sent are acked by their clients instead of sent again by the next owner
   * (cluster/partition-host.ts `release`).
   */
  async settled(match: (user: string) => boolean, timeoutMs: number): Promise<boolean> {
    const { clock } = this.deps;
    const deadline = clock.now() + timeoutMs;
    for (;;) {
      if (this.stopped || !this.anyUnfinished(match)) return true;
      if (clock.now() >= deadline) return false;
      await new Promise<void>((resolve) => clock.setTimeout(resolve, Math.min(SETTLE_POLL_MS, deadline - clock.now())));
    }
  }

  private anyUnfinished(match: (user: string) => boolean): boolean {
    for (const [user, r] of this.live) if ((r.inFlight > 0 || r.actor.unfinished > 0) && match(user)) return true;
    return false;
  }

  /** Resolves once every mailbox is empty, or after `timeoutMs` (graceful SIGTERM). */
  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlightTotal === 0) return;
    const { clock } = this.deps;
    await new Promise<void>((resolve) => {
      const waiter = (): void => {
        clock.clearTimeout(timer);
        resolve();
      };
      const timer = clock.setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== waiter);
        this.deps.log.warn({ inFlight: this.inFlightTotal }, 'drain timed out with messages still queued');
        resolve();
      }, timeoutMs);
      this.idleWaiters.push(waiter);
    });
  }

  /** Stops every actor and timer; later messages are dropped. */
  stop(): void {
    this.stopped = true;
    if (this.sweepTimer) this.deps.clock.clearTimeout(this.sweepTimer);
    for (const r of this.live.values()) {
      r.actor.dispose();
      r.stopped = true;
    }
    this.ackDeadlines.stop();
    this.live.clear();
    this.kept.clear();
    for (const w of this.idleWaiters.splice(0)) w();
    this.updateGauges();
  }

  /**
   * Forgets every user matching `match` (cluster: a partition handed off or lost), stopping their actors and timers.
   * Call after the partition's traffic stopped and `drain` returned, so nothing in flight is dropped here.
   */
  evict(match: (user: string) => boolean): number {
    let n = 0;
    for (const [user, r] of this.live) {
      if (!match(user)) continue;
      this.live.delete(user);
      r.actor.dispose();
      r.stopped = true;
      // Messages still queued for it are dropped with the actor: stop counting them, or drain() would wait forever.
      this.inFlightTotal -= r.inFlight;
      r.inFlight = 0;
      n++;
    }
    for (const user of this.kept.keys()) if (match(user) && this.kept.delete(user)) n++;
    this.history.drop(match);
    if (this.loadsUnderWay > 0) this.evictedDuringLoads.push(match);
    if (this.inFlightTotal === 0) for (const w of this.idleWaiters.splice(0)) w();
    this.updateGauges();
    return n;
  }

  get liveActors(): number {
    return this.live.size;
  }

  get residentUsers(): number {
    return this.live.size + this.kept.size;
  }

  /** Runs the idle sweep now (tests; the timer calls it too). */
  sweep(): void {
    const now = this.deps.clock.now();
    for (const [user, r] of this.live) {
      if (r.inFlight > 0 || r.actor.busy || now - r.idleSince < this.deps.passivateAfterMs) continue;
      // One synchronous step: out of the map and stopped together, so no message can reach a stopped actor.
      this.live.delete(user);
      r.stopped = true;
      this.history.seal(user, true); // its decisions stay, packed, after the actor is gone
      if (hasLiveSessions(r.actor.state)) this.kept.set(user, r.actor.state);
    }
    this.updateGauges();
  }

  private spawn(user: string): Resident {
    const kept = this.kept.get(user);
    this.kept.delete(user);
    // A kept state is complete (device changes spawn the actor and update it); a fresh one loads the registry first.
    const actor = new UserActor(user, kept ?? newUserState(), kept !== undefined, this.deps, (m) => this.tell(user, m), (n) => this.intern(n));
    const resident: Resident = { actor, head: 0, running: false, inFlight: 0, idleSince: this.deps.clock.now(), stopped: false };
    this.live.set(user, resident);
    this.updateGauges();
    return resident;
  }

  private finished(r: Resident): void {
    if (r.inFlight === 0) return; // evicted while this message ran: already uncounted
    // Passivation only looks at a mailbox with nothing in flight: the time matters when the last message finished.
    if (--r.inFlight === 0) r.idleSince = this.deps.clock.now();
    if (--this.inFlightTotal === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private scheduleSweep(): void {
    const every = Math.max(10, Math.floor(this.deps.passivateAfterMs / 2));
    this.sweepTimer = this.deps.clock.setTimeout(() => {
      this.sweep();
      if (!this.stopped) this.scheduleSweep();
    }, every);
    this.sweepTimer.unref?.(); // never keeps the process alive
  }

  private intern(node: string): string {
    const known = this.nodes.get(node);
    if (known !== undefined) return known;
    if (this.nodes.size >= MAX_INTERNED_NODES) this.nodes.clear();
    this.nodes.set(node, node);
    return node;
  }

  private updateGauges(): void {
    this.deps.metrics.liveActors.set(this.live.size);
    this.deps.metrics.residentUsers.set(this.residentUsers);
  }
}

/** Drops the taken messages from the front of a mailbox's queue (at most once per budget or wait: amortized O(1)). */
function compact(r: Resident): void {
  if (r.head === 0 || r.queue === undefined) return;
  r.queue.splice(0, r.head);
  r.head = 0;
}

/** A user id as an actor name of [a-z0-9-$_.+!*'(),] (nact's rule, kept for logs): user ids may hold ':', '@', '/', spaces, any unicode. */
export function actorName(user: string): string {
  return `u${Buffer.from(user, 'utf8').toString('base64url')}`;
}
