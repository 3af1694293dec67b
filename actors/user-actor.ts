import { idleAfterMsOf, MAX_READ_IDS, routedEvent, type ChatMessage, type Decision, type OwnerQuery, type OwnerReply, type UserView } from '../protocol/index.js';
import { decide, pcStatus } from './decide.js';
import { policyFrames, policyOf } from './policy.js';
import { Flights, HOLD_RETRY_MAX_MS, HOLD_RETRY_MS, slotKey, type Flight, type UserActorDeps, type UserActorMessage } from './flights.js';
import { copyDecision } from './history.js';
import type { HeldListing } from './mailbox.js';
import type { Timer } from '../base/clock.js';
import { clearFramesOfReads, clearPushJobs, type ReadBy } from './read-sync.js';
import {
  clearDeadToken, closeSession, deleteDevice, findMobile, findPc, isOlderThanCurrent, mergeRegistry, newPcSession, openMobileSession, openPcSession, putDevice, takeOtherKindSession, type UserState,
} from './user-state.js';

export type { AckDue, UserActorDeps, UserActorMessage } from './flights.js';

/** The behaviour of one user (PROTOCOL.md sections 2-4); the directory's mailbox (directory.ts) runs one message at a time through it. */
export class UserActor extends Flights {
  private replaying = false;
  /** replayHeld was asked for while a listing was under way: list again when it is routed. */
  private replayAgain = false;
  /** A message was held after its acks timed out on every session then open (see signOfLife). */
  private heldAfterTimeouts = false;
  /** armSessionReplay's timer is set, or has fired with no sign of life since: it is not set again until one. */
  private sessionReplay: 'armed' | 'spent' | undefined;
  /**
   * The held count's load (loadMailbox): `first` while the first try is under way (new messages wait for it, see
   * `waiting`), `retry` while a later one is, `failed` between tries, `loaded` once known; undefined before any try.
   */
  private mailboxLoad: 'first' | 'retry' | 'failed' | 'loaded' | undefined;
  /**
   * Section 4: held messages are routed again "in accept order" once the user is reachable, so a message routed while
   * a replay of them is pending (`replayPending`) waits here, in the order it came, and goes after them
   * (`routeWaiting`); routed at once, the reconnecting client got the newest message before the older held ones.
   * Undefined whenever nothing waits: the common message never allocates it.
   */
  private waiting?: { messages: ChatMessage[]; timer: Timer };
  /** Section 4's silent clear pushes, paced (`queueClearPush`); made at the user's first read. */
  private clearPush?: ClearPushPace;

  constructor(
    user: string,
    state: UserState,
    private loaded: boolean,
    deps: UserActorDeps,
    /** Sends a message back into this user's mailbox (through the directory, so it is counted). */
    self: (msg: UserActorMessage) => void,
    private readonly intern: (node: string) => string,
  ) {
    super(user, state, deps, self);
  }

  /**
   * One message of the mailbox. Returns a promise only when it must wait (the first load, a read, a query), so the
   * directory runs the common messages (route, ack, presence) without a promise and a microtask each (issue 13).
   */
  handle(msg: UserActorMessage): void | Promise<void> {
    if (!this.loaded) return this.load().then(() => this.handleLoaded(msg));
    return this.handleLoaded(msg);
  }

  private handleLoaded(msg: UserActorMessage): void | Promise<void> {
    if (!this.mailbox.loaded) this.loadMailbox();
    const now = this.deps.clock.now();
    switch (msg.type) {
      case 'session_open': {
        const session = { id: msg.session.id, node: this.intern(msg.session.node) };
        if (isOlderThanCurrent(this.state, msg.kind, msg.device, session.id, msg.openedAt)) {
          // A stale session resent by a gateway that was frozen or cut off: the newer connection stays (section 2).
          this.deps.bus.publish(this.deps.subjects.gateway(session.node), { type: 'close_session', sessionId: session.id, code: 4409, reason: 'replaced' });
          return;
        }
        const opened = msg.openedAt === undefined ? {} : { openedAt: msg.openedAt };
        const old = msg.kind === 'pc'
          ? openPcSession(this.state, { ...newPcSession(session.id, msg.device, session.node, Math.min(msg.at, now), msg.bot === true), ...opened })
          : openMobileSession(this.state, msg.device, msg.os, { sessionId: session.id, node: session.node, foreground: true, ...opened });
        // Section 2: a second connection of the same device replaces the first (4409). The replaced one counts as
        // closed (section 4: what it was sent and never acked times out at once, and the fallback is a new decision):
        // its gateway may be gone (killed, cut off), so no close would ever come, and waiting out the ack timeout held
        // those messages back for 5 s while the device was connected again.
        // The same device id under the other kind (a PC token and a mobile token naming one device) is the same device.
        const other = takeOtherKindSession(this.state, msg.kind, msg.device);
        for (const replaced of [old, other]) {
          if (!replaced) continue;
          this.deps.bus.publish(this.deps.subjects.gateway(replaced.node), { type: 'close_session', sessionId: replaced.sessionId, code: 4409, reason: 'replaced' });
          this.onSessionClosed(replaced.sessionId, now);
        }
        this.onPcMaybeActive(now);
        return this.replayHeld(); // section 4: a session of the user opened
      }
      case 'session_close':
        closeSession(this.state, msg.device, msg.sessionId);
        return this.onSessionClosed(msg.sessionId, now);
      case 'presence': {
        if (msg.state === 'foreground' || msg.state === 'background') {
          const m = findMobile(this.state, msg.device);
          if (m?.session?.sessionId !== msg.sessionId) return;
          const cameBack = msg.state === 'foreground' && !m.session.foreground;
          m.session.foreground = msg.state === 'foreground';
          // Section 4: a held message is routed again as soon as the user becomes reachable; a backgrounded app counts
          // as offline for direct delivery, so coming back to the foreground is one of those moments.
          if (cameBack) this.replayHeld();
          // Gone offline for direct delivery: what still waits in its window is not sent to it (its vendor push instead).
          else if (!m.session.foreground) this.redecideWaiting(now, (slot) => slot.session?.id === msg.sessionId, 'background');
          return;
        }
        const pc = findPc(this.state, msg.sessionId);
        if (!pc) return;
        pc.presence = msg.state; // claim 4: the PC reports active, or inactive with a reason
        pc.reason = msg.state === 'inactive' ? msg.reason : undefined;
        pc.lastSeen = Math.min(msg.at, now);
        // PC inactive: deliveries still waiting in a PC's window go to a reachable phone instead (pc_fallback stays).
        if (msg.state === 'inactive') this.redecideWaiting(now, (slot) => slot.target.via === 'pc', 'inactive');
        return this.onPcMaybeActive(now);
      }
      case 'touch':
        return this.touch(msg.sessionId, msg.at, now);
      case 'ack': {
        const slot = this.slots.get(slotKey(msg.id, msg.device));
        if (slot?.kind !== 'ack') return this.touch(msg.sessionId, msg.at, now);
        this.release(slot);
        // After the release: with nothing else in flight, the PC's refresh has no push delay to cancel (no scan).
        this.touch(msg.sessionId, msg.at, now);
        this.freeWindow(slot);
        this.deps.metrics.acks.inc();
        this.observeDelivery(slot, now);
        slot.flight.reached = true;
        return this.finish(slot, 'acked');
      }
      case 'device_put':
        putDevice(this.state, msg.device, msg.os, msg.token, msg.app);
        return this.replayHeld(); // section 4: a push token was stored
      case 'device_delete':
        deleteDevice(this.state, msg.device);
        return;
      case 'token_removed': // section 3: the registry removed it (moved, dead, unregistered, pruned): stop pushing to it
        return clearDeadToken(this.state, msg.device, msg.token);
      case 'route':
        return this.route(msg.msg, now);
      case 'policy_changed':
        return this.reloadPolicy();
      case 'ack_due':
        return this.onAckTimeout(msg.id, msg.device, now, msg.seq);
      case 'push_due': {
        const slot = this.slots.get(slotKey(msg.id, msg.device));
        if (slot?.kind !== 'delay' || slot.timed !== msg.seq) return; // not this slot's delay: an earlier one's
        const m = findMobile(this.state, msg.device);
        if (m?.token === undefined) {
          this.release(slot);
          this.pushFailedFor(slot.flight); // the token went during the push delay: held unless another target reached
          return this.finish(slot, 'failed', 'no_token');
        }
        if (policyOf(this.state.policy).mobile === 'never') {
          // Section 4 is the rule when the push goes out: the policy turned "never" during the push delay. Held
          // unless another target reached the user, as with nothing else reachable under "never".
          this.release(slot);
          this.pushFailedFor(slot.flight);
          slot.flight.withheld = true;
          return this.finish(slot, 'cancelled', 'policy_never');
        }
        return this.startPush(slot, m.token, m.app);
      }
      case 'push_done':
        return this.onPushDone(msg.id, msg.device, msg.outcome);
      case 'clear_push_dead':
        return this.removeDeadToken(msg.device, msg.token);
      case 'clear_push_due':
        return this.onClearPushDue(now);
      case 'held_done':
        this.onHeld(msg.id, msg.ok, now);
        return this.routeWaiting(now); // the last hold written, and no replay started by it: what waited goes
      case 'held_loaded':
        return this.routeHeld(msg.listing, now);
      case 'replay_due':
        return this.onSessionReplayDue();
      case 'wait_over':
        if (msg.waiting === this.waiting?.messages) this.routeWaiting(now, true);
        return;
      case 'hold_retry': {
        const flight = this.flights.get(msg.id);
        if (flight && !flight.holding && flight.holdWanted) this.startHold(flight);
        return;
      }
      case 'mailbox_loaded':
        return this.onMailboxLoaded(msg.ok, now);
      case 'read':
      case 'reads': {
        // Section 2: any JSON frame refreshes the session, a `read` frame too (a PC reading without a ping stayed
        // active only until the presence TTL). After the read, as an ack touches after its release.
        const reads = msg.type === 'read' ? [msg] : msg.reads;
        return this.onRead(reads, now).then(() => {
          for (const { sessionId, at } of reads) if (sessionId !== undefined) this.touch(sessionId, at, this.deps.clock.now());
        });
      }
      case 'ask':
        return this.answer(msg.query, now).then(msg.reply);
    }
  }

  private async load(): Promise<void> {
    try {
      const [devices, policy] = await Promise.all([this.deps.registry.list(this.user), this.deps.policies?.get(this.user)]);
      mergeRegistry(this.state, devices);
      if (policy !== undefined) this.state.policy = policy;
      this.loaded = true;
    } catch (err) {
      // Route with what we know; the next message tries again.
      this.deps.log.error({ err, user: this.user }, 'device registry or policy load failed');
    }
  }

  /**
   * `PUT …/policy` stored a new policy: read it back (the store orders concurrent writers, not the bus), then, if its
   * idle threshold changed, tell the user's open PC sessions in a `policy` frame (they would otherwise learn it at the
   * next hello). Only then: the frame is ours, not in section 2's table, and a PUT that leaves the threshold as it was
   * puts nothing on the PC's wire.
   */
  private async reloadPolicy(): Promise<void> {
    const before = policyOf(this.state.policy).mobile;
    const idleBefore = idleAfterMsOf(this.state.policy);
    try {
      this.state.policy = await this.deps.policies?.get(this.user);
    } catch (err) {
      this.deps.log.error({ err, user: this.user }, 'policy load failed');
      return;
    }
    if (idleAfterMsOf(this.state.policy) !== idleBefore) {
      for (const { node, msg } of policyFrames(this.state, this.user)) this.deps.bus.publish(this.deps.subjects.gateway(node), msg);
    }
    // Vendor pushes allowed again (`never` lifted): the user may be reachable now, as when a push token is stored
    // (section 4 routes held messages again then), so what `never` held goes out instead of waiting for a session.
    if (before === 'never' && policyOf(this.state.policy).mobile !== 'never') this.replayHeld();
  }

  /**
   * Held count and badge load in the background; once known, held messages may go to sessions already open. The
   * answer comes back as `mailbox_loaded`, failed or not: the messages waiting for the first try go then either way.
   */
  private loadMailbox(): void {
    if (this.mailboxLoad === 'first' || this.mailboxLoad === 'retry') return;
    this.mailboxLoad = this.mailboxLoad === undefined ? 'first' : 'retry';
    void this.mailbox.load(this.deps.clock.now()).then((ok) => this.self({ type: 'mailbox_loaded', ok }));
  }

  /**
   * Section 4: messages held before this actor ran (a restart, a failover) go to sessions that opened before the count
   * was known, and then what waited behind them. A failed try leaves the count unknown; later tries do not hold new
   * messages back (a store that is down must not stall every message of the user), so those may go first, as before.
   */
  private onMailboxLoaded(ok: boolean, now: number): void {
    if (this.mailbox.loaded) this.mailboxLoad = 'loaded';
    else if (!ok) this.mailboxLoad = 'failed';
    if (this.mailbox.loaded) this.replayHeld();
    this.routeWaiting(now);
  }

  /**
   * Section 4: a replay of held messages is under way (their listing is being read), or may be (the first load of the
   * held count at actor start; holds still being written, whose `held_done` replays them once a session is open): a
   * new message routed now waits behind it. Not while nothing is held and that is known: then no replay is under way
   * and the count is loaded.
   */
  private get replayPending(): boolean {
    return this.replaying || this.mailboxLoad === 'first' || this.mailbox.holdsInFlight;
  }

  private touch(sessionId: string, at: number, now: number): void {
    this.signOfLife();
    const pc = findPc(this.state, sessionId);
    if (!pc) return;
    pc.lastSeen = Math.min(at, now);
    this.onPcMaybeActive(now); // a stale PC heard again is active again
  }

  private route(msg: ChatMessage, now: number): void {
    // Section 4: behind a pending replay of held messages (and behind what already waits for it), in the order it came.
    if (this.waiting !== undefined || this.replayPending) {
      if (this.waiting === undefined) {
        const messages = [msg];
        this.waiting = { messages, timer: this.deps.clock.setTimeout(() => this.self({ type: 'wait_over', waiting: messages }), MAX_WAIT_BEHIND_REPLAY_MS) };
      } else this.waiting.messages.push(msg);
      return this.routeWaiting(now); // nothing while the replay is pending
    }
    this.routeNew(msg, now);
  }

  /**
   * The messages that waited behind a replay (`waiting`), in the order they came, once no replay is pending: after
   * the held ones it routed, or after a listing that failed (it routed none, and these must not wait for the next).
   * Each is checked as it goes (fence, in flight, finished), as when it came, and one that throws is logged and the
   * rest go on, as the directory does with a message of the mailbox (directory.ts `failed`). `waitedLongEnough`: the
   * wait's bound (MAX_WAIT_BEHIND_REPLAY_MS) is over, so they go even with the replay still pending.
   */
  private routeWaiting(now: number, waitedLongEnough = false): void {
    const waiting = this.waiting;
    if (waiting === undefined || (this.replayPending && !waitedLongEnough)) return;
    this.waiting = undefined;
    this.deps.clock.clearTimeout(waiting.timer); // no late `wait_over` to wake (or respawn) the actor
    for (const msg of waiting.messages) {
      try {
        this.routeNew(msg, now);
      } catch (err) {
        this.deps.log.error({ err, user: this.user, type: 'route' }, 'user actor failed on a message');
      }
    }
  }

  private routeNew(msg: ChatMessage, now: number): void {
    if (this.deps.fence && !this.deps.fence.mayAct(this.user)) return; // fenced: the next owner routes it
    if (this.flights.has(msg.id)) return; // redelivered while in flight: done when it finishes
    // Redelivered after it finished (the same acceptedAt): done again, delivered never. The id accepted anew after the
    // dedupe window has another acceptedAt and is routed (actors/history.ts).
    if (this.recent.has(msg.id, msg.acceptedAt)) return this.deps.done(msg.id);
    const flight: Flight = { msg, open: 0 };
    this.flights.set(msg.id, flight);
    this.carryOut(flight, decide(this.state, msg, now, this.deps), true);
    this.deps.metrics.decisionSeconds.observe(Math.max(0, now - msg.acceptedAt) / 1000); // `now` of this message: the decision took microseconds
    this.settleIfDone(flight);
  }

  protected settleIfDone(flight: Flight): void {
    if (flight.open > 0 || flight.holding || this.flights.get(flight.msg.id) !== flight) return;
    const { id } = flight.msg;
    // Counted as unread when routed to a device; it reached none (pushes failed, timed out): not delivered after all.
    if (!flight.reached) this.mailbox.undelivered(id);
    if (flight.fromHeld) {
      // Routed again from the held store: it stays held until it reached the user (or was read).
      this.dropFlight(id);
      if (flight.reached) this.mailbox.drop([id], 'delivered').catch((err: unknown) => this.deps.log.error({ err, user: this.user }, 'held message not dropped'));
      else if (flight.tried !== undefined) {
        this.heldAfterTimeouts = true; // its deliveries timed out again: the next sign of life replays it (signOfLife)
        this.armSessionReplay(flight, this.deps.clock.now());
      }
      // Reached the user, or durably held still: either way finished for the ingress. A copy it hands out again (a
      // settle lost to kill -9, replayed after the reconnect grace) is settled at once instead of sent a second
      // time, and one that came while this flight was under way (route() left it to this flight) is settled now.
      return this.finished(flight.msg);
    }
    if (flight.holdWanted && !flight.reached && !flight.read) return this.startHold(flight);
    // Its ingress copy reached the user while a held copy waits (a settle lost to kill -9 hands out a message held
    // too, and a replay skips what is in flight): the held copy goes, or the next replay would send it again.
    if (flight.reached && this.mailbox.heldCount > 0) this.mailbox.dropIfHeld(id).catch((err: unknown) => this.deps.log.error({ err, user: this.user }, 'held message not dropped'));
    this.dropFlight(id);
    this.finished(flight.msg);
  }

  /**
   * `id` is finished for the ingress (`done`; a copy handed out again is settled at once: `recent`), and its decisions
   * are final: packed now (and so written, embedded: store/decision-log.ts), not when the actor passivates.
   */
  private finished(msg: ChatMessage): void {
    const { id } = msg;
    this.recent.add(id, msg.acceptedAt);
    this.deps.done(id);
    this.history.seal(this.user);
  }

  /** Section 4: holds the message durably, and only then tells the ingress `done` (held_done). */
  private startHold(flight: Flight): void {
    const now = this.deps.clock.now();
    const { msg } = flight;
    const expiresAt = this.mailbox.expiresAt(msg, now);
    if (expiresAt === undefined) {
      // `ttlSeconds: 0` (now or never) or already past its TTL: nothing to keep.
      this.logHeld(flight, 'undeliverable', now);
      this.dropFlight(msg.id);
      return this.finished(msg);
    }
    flight.holding = true;
    this.deps.metrics.messagesHeld.inc({ why: flight.tried ? 'ack_timeout' : flight.withheld ? 'policy_never' : flight.pushFailed ? 'push_failed' : 'unreachable' });
    this.mailbox.hold(msg, expiresAt, now).then(
      () => this.self({ type: 'held_done', id: msg.id, ok: true }),
      (err: unknown) => {
        if (!flight.holdRetries) this.deps.log.error({ err, user: this.user, id: msg.id }, 'message could not be held yet; it stays unsettled in the ingress and is tried again');
        this.self({ type: 'held_done', id: msg.id, ok: false });
      },
    );
  }

  private onHeld(id: string, ok: boolean, now: number): void {
    const flight = this.flights.get(id);
    if (!flight?.holding) return;
    flight.holding = false;
    if (!ok) {
      // Not durable: never `done`; tried again with backoff (a JetStream election, a full disk) while it stays in flight.
      flight.holdRetries = (flight.holdRetries ?? 0) + 1;
      const delay = Math.min(HOLD_RETRY_MAX_MS, HOLD_RETRY_MS * 2 ** Math.min(flight.holdRetries - 1, 10));
      this.deps.clock.setTimeout(() => this.self({ type: 'hold_retry', id }), delay);
      return;
    }
    this.dropFlight(id);
    if (flight.read) {
      this.mailbox.drop([id], 'read').catch(() => undefined);
      return this.finished(flight.msg);
    }
    if (flight.tried !== undefined || flight.pushFailed) this.logHeld(flight, 'held', now);
    this.finished(flight.msg); // durably held
    // A session that was not tried opened meanwhile (a PC reconnecting while its old socket timed out): go now.
    const fresh = decide(this.state, flight.msg, now, this.deps).commands.some((c) => c.type === 'deliver' && !flight.tried?.includes(c.session.id));
    if (fresh) this.replayHeld();
    else if (flight.tried !== undefined) {
      this.heldAfterTimeouts = true; // see signOfLife
      this.armSessionReplay(flight, now);
    }
  }

  /**
   * A session acked or pinged. Messages held because their acks timed out on sessions that are still open (a
   * gateway frozen for a while: the client never noticed, never reconnects, so no session opens to replay them) are
   * routed again now that a session answers; without it they waited for the user's next connection.
   */
  private signOfLife(): void {
    if (this.sessionReplay === 'spent') this.sessionReplay = undefined;
    if (!this.heldAfterTimeouts) return;
    this.heldAfterTimeouts = false;
    this.replayHeld();
  }

  /**
   * `flight` was held after its deliveries timed out, and a session it was sent to is still open: in a cluster the
   * owner's frame to the gateway goes over core NATS, at most once, and one lost in a NATS server restart times out
   * like a client that never acked, while the client, still connected, never notices. Such a session is the user
   * being reachable still (section 4: a held message is routed again "as soon as the user becomes reachable"), so
   * what is held goes out to it once more after SWITCHBOARD_ACK_TIMEOUT_MS, without waiting for its next ping. Once
   * per sign of life (an ack or a ping resets it): a client that never acks gets the message twice, then it waits.
   */
  private armSessionReplay(flight: Flight, now: number): void {
    if (this.sessionReplay !== undefined) return;
    const tried = flight.tried ?? [];
    const stillOpen = decide(this.state, flight.msg, now, this.deps).commands.some((c) => c.type === 'deliver' && tried.includes(c.session.id));
    if (!stillOpen) return;
    this.sessionReplay = 'armed';
    this.deps.clock.setTimeout(() => this.self({ type: 'replay_due' }), this.deps.ackTimeoutMs);
  }

  private onSessionReplayDue(): void {
    if (this.sessionReplay !== 'armed') return;
    this.sessionReplay = 'spent';
    if (!this.heldAfterTimeouts) return; // a sign of life replayed them meanwhile
    this.heldAfterTimeouts = false;
    this.replayHeld();
  }

  /** A fallback decision that ended in held or undeliverable, for the decision history. */
  private logHeld(flight: Flight, route: 'held' | 'undeliverable', now: number): void {
    if (flight.tried === undefined && !flight.pushFailed) return; // the first decision already said so
    const reason = flight.tried !== undefined ? 'ack_timeout' : flight.withheld ? 'policy_never' : 'push_failed';
    const decision: Decision = { id: flight.msg.id, route, reason, targets: [], at: now };
    this.history.add(this.user, decision);
    this.deps.metrics.messagesRouted.inc({ route, reason });
    this.deps.onRouted?.(routedEvent(copyDecision(decision), this.user, this.deps.nodeId));
  }

  /**
   * Section 4: the user became reachable; held messages are routed again, in accept order, through the window. New
   * messages routed while their listing is read wait behind them (`waiting`), so none overtakes the held backlog.
   */
  private replayHeld(): void {
    if (this.replaying) {
      // A reason to replay came while a listing is under way (a message held meanwhile, a session opened): that
      // listing may not hold it, so list again once it is routed rather than leave it held until the next trigger.
      this.replayAgain = true;
      return;
    }
    if (this.mailbox.heldCount === 0) return;
    if (this.deps.fence && !this.deps.fence.mayAct(this.user)) return;
    this.replaying = true;
    this.mailbox.list(this.deps.clock.now()).then(
      (listing) => this.self({ type: 'held_loaded', listing }),
      (err: unknown) => {
        this.deps.log.error({ err, user: this.user }, 'held messages could not be read');
        this.self({ type: 'held_loaded', listing: { messages: [], gone: new Set() } });
      },
    );
  }

  private routeHeld(listing: HeldListing, now: number): void {
    this.replaying = false;
    const again = this.replayAgain;
    this.replayAgain = false;
    try {
      for (const msg of listing.messages) {
        // In flight already (its ingress copy, a hold being written), or no longer held since the listing was read.
        if (this.flights.has(msg.id) || !this.mailbox.stillHeld(listing, msg.id)) continue;
        const routed = decide(this.state, msg, now, this.deps);
        if (routed.decision.route === 'held' || routed.decision.route === 'undeliverable') break; // still nobody: they stay held (what waited behind them follows below)
        const flight: Flight = { msg, open: 0, fromHeld: true };
        this.flights.set(msg.id, flight);
        this.carryOut(flight, routed, true);
        this.settleIfDone(flight);
      }
    } finally {
      this.mailbox.routed(listing);
    }
    if (again) this.replayHeld();
    this.routeWaiting(now); // section 4: the new messages after the held ones (unless another listing is under way)
  }

  /**
   * Section 4 read sync: pending pushes (push delay), waiting and unacked deliveries of these messages are cancelled,
   * they are no longer held, the badge drops (durably), the user's other sessions get `clear`, offline phones a
   * silent clear push.
   */
  private async onRead(reads: readonly ReadBy[], now: number): Promise<number> {
    const ids = reads.length === 1 ? [...reads[0].ids] : [...new Set(reads.flatMap((r) => r.ids))];
    const wanted = new Set(ids);
    for (const [key, slot] of [...(this.slotsTable ?? [])]) {
      if (!wanted.has(slot.flight.msg.id) || slot.kind === 'push') continue;
      this.stopTimers(slot);
      this.dropSlot(key);
      if (slot.kind === 'queued') this.windows.unqueue(slot.session!.id, slot);
      else if (slot.kind === 'ack') this.freeWindow(slot);
      slot.target.outcome = 'cancelled';
      slot.target.detail = 'read';
      slot.flight.open--;
      slot.flight.read = true;
      this.settleIfDone(slot.flight);
    }
    for (const id of ids) {
      const f = this.flights.get(id);
      if (f) f.read = true;
    }
    this.dropReadWaiting(wanted);
    const badge = await this.mailbox.read(ids);
    for (const { node, msg } of clearFramesOfReads(this.state, reads, badge, this.user)) this.deps.bus.publish(this.deps.subjects.gateway(node), msg);
    this.queueClearPush(ids, badge, now);
    return badge;
  }

  /**
   * Section 4: a read message is no longer delivered nor held. One still waiting behind a replay (`waiting`: it has no
   * flight yet) is finished here, never routed: routed after the read, it was held, and delivered after a restart.
   */
  private dropReadWaiting(read: ReadonlySet<string>): void {
    const waiting = this.waiting;
    if (waiting === undefined || !waiting.messages.some((m) => read.has(m.id))) return;
    const kept = waiting.messages.filter((m) => !read.has(m.id));
    for (const msg of waiting.messages) if (read.has(msg.id)) this.finished(msg);
    if (kept.length > 0) {
      waiting.messages.length = 0;
      waiting.messages.push(...kept); // the same array: its `wait_over` timer names it
      return;
    }
    this.waiting = undefined;
    this.deps.clock.clearTimeout(waiting.timer);
  }

  /**
   * Waiting clear pushes keep the actor from passivating (their timer's message would reach a stopped actor), and so
   * do messages waiting behind a replay (they would be lost with it, never `done`).
   */
  /** Also the messages waiting behind a replay of held ones (not routed yet, so in no flight). */
  override get unfinished(): number {
    return super.unfinished + (this.waiting?.messages.length ?? 0);
  }

  override get busy(): boolean {
    return super.busy || this.clearPush?.armed === true || this.waiting !== undefined;
  }

  /**
   * Section 4's silent clear pushes to the user's offline phones, at most one round per CLEAR_PUSH_INTERVAL_MS: a read
   * after a quiet interval pushes at once; reads within the interval wait for its end and go out as one round with
   * their ids (at most MAX_READ_IDS; the badge carries the count whatever ids a client misses) and the latest badge.
   * Without this a flood of `read` frames sent one vendor push per read per offline phone: a vendor answers such a
   * burst with 429, and the (app, vendor) circuit breaker it opens holds up every other user's pushes of that app.
   */
  private queueClearPush(ids: readonly string[], badge: number, now: number): void {
    const pace = (this.clearPush ??= { lastAt: -Infinity, armed: false });
    if (!pace.armed && now - pace.lastAt >= CLEAR_PUSH_INTERVAL_MS) {
      pace.lastAt = now;
      return this.sendClearPushes(ids, badge, now);
    }
    const waiting = (pace.ids ??= new Set());
    for (const id of ids) if (waiting.size < MAX_READ_IDS) waiting.add(id);
    pace.badge = badge;
    if (pace.armed) return;
    pace.armed = true;
    const timer = this.deps.clock.setTimeout(() => this.self({ type: 'clear_push_due' }), Math.max(0, pace.lastAt + CLEAR_PUSH_INTERVAL_MS - now));
    (timer as { unref?: () => void }).unref?.(); // never holds a stopping process
  }

  private onClearPushDue(now: number): void {
    const pace = this.clearPush;
    if (pace?.armed !== true) return;
    pace.armed = false;
    pace.lastAt = now;
    const ids = [...(pace.ids ?? [])];
    pace.ids = undefined;
    this.sendClearPushes(ids, pace.badge ?? this.mailbox.unread, now);
  }

  private sendClearPushes(ids: readonly string[], badge: number, now: number): void {
    for (const job of clearPushJobs(this.state, this.user, [...ids], badge, now, this.deps.canPush)) {
      this.deps.pushes.push(job).then(
        (o) => {
          this.deps.metrics.clearPushes.inc({ vendor: job.vendor, outcome: o.outcome });
          // Back through the mailbox: the outcome arrives after this turn, and state is only touched in a turn.
          if (o.outcome === 'dead_token') this.self({ type: 'clear_push_dead', device: job.device, token: job.token });
        },
        () => this.deps.metrics.clearPushes.inc({ vendor: job.vendor, outcome: 'failed' }),
      );
    }
  }

  private async answer(q: OwnerQuery, now: number): Promise<OwnerReply> {
    if (q.type === 'decisions_query') return { type: 'decisions', decisions: this.history.newest(this.user, q.limit) };
    if (q.type === 'read_query') {
      try {
        return { type: 'read_done', unread: await this.onRead([{ ids: q.ids }], now) };
      } catch (err) {
        this.deps.log.error({ err, user: this.user }, 'read not stored');
        return { type: 'error', code: 'store_failed', message: 'the read could not be stored' };
      }
    }
    await this.mailbox.load(now); // the badge; bounded by MAILBOX_LOAD_TIMEOUT_MS
    let held = this.mailbox.heldCount;
    try {
      held = await this.deps.held.count(this.user, now); // TTLs run out without a write
    } catch {
      // the last known count
    }
    const pc = pcStatus(this.state, now, this.deps);
    const view: UserView = {
      user: this.user,
      owner: this.deps.nodeId,
      pc: pc.active ? { state: 'active', sessions: pc.sessions } : { state: 'inactive', reason: pc.reason, sessions: pc.sessions },
      devices: (this.state.mobiles ?? []).map((m) => ({ device: m.device, os: m.os, online: m.session?.foreground === true, hasToken: m.token !== undefined })),
      policy: { ...policyOf(this.state.policy) },
      held,
      unread: this.mailbox.unread,
    };
    return { type: 'user_view', view };
  }
}

/**
 * Least time between two rounds of a user's silent clear pushes, ms (`UserActor.queueClearPush`): a second's delay on a
 * notification already read elsewhere, against a vendor push per read frame.
 */
export const CLEAR_PUSH_INTERVAL_MS = 1000;

/**
 * Longest a new message waits behind a replay of held messages (`UserActor.route`), ms. Section 4 routes held messages
 * in accept order, so new ones wait for the listing; but a held store that is slow or down (a JetStream leader
 * election, a store read that hangs until MAILBOX_LOAD_TIMEOUT_MS) must not stall a user's live messages with it:
 * past this they go, and the held ones follow when their listing comes.
 */
export const MAX_WAIT_BEHIND_REPLAY_MS = 1000;

/** When a user's last clear push round went out, and what waits for the next. */
interface ClearPushPace {
  /** Epoch ms of the last round. */
  lastAt: number;
  /** A round is due (its timer set). */
  armed: boolean;
  /** Ids read since the last round, at most MAX_READ_IDS. */
  ids?: Set<string>;
  /** The badge after the latest of those reads. */
  badge?: number;
}
