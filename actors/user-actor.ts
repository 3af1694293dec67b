import type { Bus } from '../bus/bus.js';
import type { OwnerFence } from '../bus/fence.js';
import type { Subjects } from '../bus/subjects.js';
import type {
  ChatMessage, Decision, DecisionTarget, MessageFrame, OwnerMessage, OwnerQuery, OwnerReply, RoutedEvent, TargetOutcome, UserView,
} from '../protocol/index.js';
import type { Clock, Timer } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { PushOutcome, PushSink } from '../protocol/push.js';
import type { DeviceRegistry } from '../store/types.js';
import { decide, decideFallback, MAX_DIRECT_REDELIVERIES, pcStatus, type Command, type Routed } from './decide.js';
import { DeliveryWindows } from './delivery-window.js';
import { UserMailbox, type MailboxDeps } from './mailbox.js';
import { clearFrames, clearPushJobs } from './read-sync.js';
import { copyDecision, DecisionLog, RecentIds } from './history.js';
import {
  clearDeadToken, closeSession, deleteDevice, findMobile, findPc, mergeRegistry, newPcSession, openMobileSession, openPcSession, putDevice, type UserState,
} from './user-state.js';

/** What one user actor needs from the node; the directory's deps minus what only the directory uses. */
export interface UserActorDeps extends MailboxDeps {
  /** SWITCHBOARD_MAX_INFLIGHT: deliveries sent to one session and not yet acked, at most (default 256). */
  maxInflight: number;
  nodeId: string;
  bus: Bus;
  subjects: Subjects;
  registry: DeviceRegistry;
  pushes: PushSink;
  clock: Clock;
  ackTimeoutMs: number;
  presenceTtlMs: number;
  pushDelayMs: number;
  metrics: Metrics;
  log: Logger;
  /**
   * The one completion call (`Ingress.done`): the message reached a final outcome on every target, or it is a
   * redelivery of one that already did. Embedded: the inbox settles it; cluster: JetStream acks it.
   */
  done(messageId: string): void;
  /** Cluster: whether this node still owns the user's partition (bus/fence.ts). Absent: always (embedded). */
  fence?: OwnerFence;
  onRouted?(e: RoutedEvent): void;
}

/** Gateway traffic plus what the actor sends itself: timers and push outcomes come back as messages, never as callbacks that touch state. */
export type UserActorMessage =
  | OwnerMessage
  | { type: 'ack_due'; id: string; device: string }
  | { type: 'push_due'; id: string; device: string }
  | { type: 'push_done'; id: string; device: string; outcome: PushOutcome }
  | { type: 'held_done'; id: string; ok: boolean }
  | { type: 'held_loaded'; messages: ChatMessage[] }
  | { type: 'mailbox_loaded' }
  | { type: 'hold_retry'; id: string }
  | { type: 'ask'; query: OwnerQuery; reply: (r: OwnerReply) => void };

/** A hold that could not be written is tried again after this long, doubling up to HOLD_RETRY_MAX_MS. */
export const HOLD_RETRY_MS = 500;
export const HOLD_RETRY_MAX_MS = 30_000;

/** A message whose targets are not all final yet; settled when `open` drops to 0. */
interface Flight {
  msg: ChatMessage;
  open: number;
  /** Direct resends after ack timeouts so far (MAX_DIRECT_REDELIVERIES). */
  resent?: number;
  /** Some target acked it or a vendor took it: the user has it. */
  reached?: boolean;
  /** Nothing was reachable, or an ack timeout left nothing to try: hold it unless a target reached the user. */
  holdWanted?: boolean;
  /** The hold is being written; `done` follows once it is durable. */
  holding?: boolean;
  /** Failed hold writes so far (retried with backoff). */
  holdRetries?: number;
  /** Read elsewhere meanwhile: never held. */
  read?: boolean;
  /** Routed again from the held store (its ingress `done` was long ago); dropped from there once it reached the user. */
  fromHeld?: boolean;
  /** Sessions this message was sent to: a hold re-routes at once only to a session not tried. */
  tried?: Set<string>;
}

/** One target in flight: awaiting an ack, a push delay, or a vendor answer. */
interface Slot {
  flight: Flight;
  decision: Decision;
  target: DecisionTarget;
  /** `queued`: waiting for room in the session's window (flow control, section 2). */
  kind: 'ack' | 'delay' | 'push' | 'queued';
  timer?: Timer;
  token?: string;
  /** A direct delivery's session. */
  session?: { node: string; id: string };
}

/** The behaviour of one user (PROTOCOL.md sections 2-4); the nact actor in directory.ts runs one message at a time through it. */
export class UserActor {
  // Created on first use: a live actor that only ever sees session traffic should not pay for empty tables.
  private flightsTable?: Map<string, Flight>;
  private slotsTable?: Map<string, Slot>;
  private readonly recent = new RecentIds();
  private readonly history = new DecisionLog();
  private readonly windows: DeliveryWindows<Slot>;
  private readonly mailbox: UserMailbox;
  private replaying = false;
  private mailboxLoading = false;

  private get flights(): Map<string, Flight> {
    return (this.flightsTable ??= new Map());
  }

  private get slots(): Map<string, Slot> {
    return (this.slotsTable ??= new Map());
  }

  constructor(
    readonly user: string,
    readonly state: UserState,
    private loaded: boolean,
    private readonly deps: UserActorDeps,
    /** Sends a message back into this user's mailbox (through the directory, so it is counted). */
    private readonly self: (msg: UserActorMessage) => void,
    private readonly intern: (node: string) => string,
  ) {
    this.windows = new DeliveryWindows(deps.maxInflight);
    this.mailbox = new UserMailbox(user, deps);
  }

  /** Pending acks, push delays or vendor answers: such an actor must not passivate. */
  get busy(): boolean {
    return (this.slotsTable?.size ?? 0) > 0 || (this.flightsTable?.size ?? 0) > 0;
  }

  async handle(msg: UserActorMessage): Promise<void> {
    if (!this.loaded) await this.load();
    if (!this.mailbox.loaded) this.loadMailbox();
    const now = this.deps.clock.now();
    switch (msg.type) {
      case 'session_open': {
        const session = { id: msg.session.id, node: this.intern(msg.session.node) };
        const old = msg.kind === 'pc'
          ? openPcSession(this.state, newPcSession(session.id, msg.device, session.node, Math.min(msg.at, now)))
          : openMobileSession(this.state, msg.device, msg.os, { sessionId: session.id, node: session.node, foreground: true });
        // Section 2: a second connection of the same device replaces the first (4409).
        if (old) this.deps.bus.publish(this.deps.subjects.gateway(old.node), { type: 'close_session', sessionId: old.sessionId, code: 4409, reason: 'replaced' });
        this.onPcMaybeActive(now);
        return this.replayHeld(); // section 4: a session of the user opened
      }
      case 'session_close':
        closeSession(this.state, msg.device, msg.sessionId);
        return this.onSessionClosed(msg.sessionId, now);
      case 'presence': {
        if (msg.state === 'foreground' || msg.state === 'background') {
          const m = findMobile(this.state, msg.device);
          if (m?.session?.sessionId === msg.sessionId) m.session.foreground = msg.state === 'foreground';
          return;
        }
        const pc = findPc(this.state, msg.sessionId);
        if (!pc) return;
        pc.presence = msg.state; // claim 4: the PC reports active, or inactive with a reason
        pc.reason = msg.state === 'inactive' ? msg.reason : undefined;
        pc.lastSeen = Math.min(msg.at, now);
        return this.onPcMaybeActive(now);
      }
      case 'touch':
        return this.touch(msg.sessionId, msg.at, now);
      case 'ack': {
        this.touch(msg.sessionId, msg.at, now);
        const slot = this.slots.get(slotKey(msg.id, msg.device));
        if (slot?.kind !== 'ack') return;
        this.release(slot, msg.device);
        this.freeWindow(slot);
        this.deps.metrics.acks.inc();
        slot.flight.reached = true;
        return this.finish(slot, 'acked');
      }
      case 'device_put':
        putDevice(this.state, msg.device, msg.os, msg.token, msg.app);
        return this.replayHeld(); // section 4: a push token was stored
      case 'device_delete':
        deleteDevice(this.state, msg.device);
        return;
      case 'route':
        return this.route(msg.msg, now);
      case 'ack_due':
        return this.onAckTimeout(msg.id, msg.device, now);
      case 'push_due': {
        const slot = this.slots.get(slotKey(msg.id, msg.device));
        if (slot?.kind !== 'delay') return;
        const m = findMobile(this.state, msg.device);
        if (m?.token === undefined) {
          this.release(slot, msg.device);
          return this.finish(slot, 'failed', 'no_token');
        }
        return this.startPush(slot, m.token, m.app);
      }
      case 'push_done':
        return this.onPushDone(msg.id, msg.device, msg.outcome);
      case 'held_done':
        return this.onHeld(msg.id, msg.ok, now);
      case 'held_loaded':
        return this.routeHeld(msg.messages, now);
      case 'hold_retry': {
        const flight = this.flights.get(msg.id);
        if (flight && !flight.holding && flight.holdWanted) this.startHold(flight);
        return;
      }
      case 'mailbox_loaded':
        return this.replayHeld(); // sessions that opened before the held count was known
      case 'read':
        await this.onRead(msg.ids, msg.sessionId, now);
        return;
      case 'ask':
        return msg.reply(await this.answer(msg.query, now));
    }
  }

  /** Clears every timer; the node is stopping. */
  dispose(): void {
    for (const slot of this.slotsTable?.values() ?? []) if (slot.timer) this.deps.clock.clearTimeout(slot.timer);
    this.slotsTable?.clear();
  }

  private async load(): Promise<void> {
    try {
      mergeRegistry(this.state, await this.deps.registry.list(this.user));
      this.loaded = true;
    } catch (err) {
      // Route with what we know; the next message tries again.
      this.deps.log.error({ err, user: this.user }, 'device registry load failed');
    }
  }

  /** Held count and badge load in the background; once known, held messages may go to sessions already open. */
  private loadMailbox(): void {
    if (this.mailboxLoading) return;
    this.mailboxLoading = true;
    void this.mailbox.load(this.deps.clock.now()).then((ok) => {
      this.mailboxLoading = false;
      if (ok) this.self({ type: 'mailbox_loaded' });
    });
  }

  private touch(sessionId: string, at: number, now: number): void {
    const pc = findPc(this.state, sessionId);
    if (!pc) return;
    pc.lastSeen = Math.min(at, now);
    this.onPcMaybeActive(now); // a stale PC heard again is active again
  }

  private route(msg: ChatMessage, now: number): void {
    if (this.deps.fence && !this.deps.fence.mayAct(this.user)) return; // fenced: the next owner routes it
    if (this.flights.has(msg.id)) return; // redelivered while in flight: done when it finishes
    if (this.recent.has(msg.id)) return this.deps.done(msg.id); // redelivered after it finished: done again, delivered never
    const flight: Flight = { msg, open: 0 };
    this.flights.set(msg.id, flight);
    this.carryOut(flight, decide(this.state, msg, now, this.deps), true);
    this.deps.metrics.decisionSeconds.observe(Math.max(0, this.deps.clock.now() - msg.acceptedAt) / 1000);
    this.settleIfDone(flight);
  }

  /** Records a decision and executes its commands; a device that already has this message in flight is skipped. */
  private carryOut(flight: Flight, routed: Routed, delayPushes: boolean): void {
    const { id } = flight.msg;
    if (this.deps.fence && !this.deps.fence.mayAct(this.user)) return; // fenced: a timer fired after the lease was lost
    const commands: Command[] = [];
    const targets: DecisionTarget[] = [];
    routed.commands.forEach((c, i) => {
      if (this.slots.has(slotKey(id, c.device))) return;
      commands.push(c);
      targets.push(routed.decision.targets[i]);
    });
    const decision: Decision = { ...routed.decision, targets };
    if (decision.route === 'held') flight.holdWanted = true;
    else if (commands.length > 0) this.mailbox.delivered(id); // section 4: unread counts messages delivered to the user
    this.history.add(decision);
    this.deps.metrics.messagesRouted.inc({ route: decision.route });
    this.deps.onRouted?.({ ...copyDecision(decision), user: this.user, node: this.deps.nodeId });
    commands.forEach((c, i) => {
      const slot: Slot = { flight, decision, target: targets[i], kind: 'ack' };
      this.slots.set(slotKey(id, c.device), slot);
      flight.open++;
      if (c.type === 'deliver') {
        slot.session = c.session;
        (flight.tried ??= new Set()).add(c.session.id);
        // Section 2 flow control: past SWITCHBOARD_MAX_INFLIGHT unacked, it waits in the session's window.
        if (this.windows.admit(c.session.id, slot)) this.send(slot);
        else slot.kind = 'queued';
      } else if (delayPushes && this.deps.pushDelayMs > 0) {
        // Grace before a vendor push: cancelled if a PC turns active meanwhile (onPcMaybeActive).
        slot.kind = 'delay';
        slot.timer = this.deps.clock.setTimeout(() => this.self({ type: 'push_due', id, device: c.device }), this.deps.pushDelayMs);
      } else {
        this.startPush(slot, c.token, c.app);
      }
    });
  }

  /** Sends a direct delivery the window admitted; its ack timeout starts now. */
  private send(slot: Slot): void {
    const { id } = slot.flight.msg;
    const device = slot.target.device;
    const session = slot.session!;
    slot.kind = 'ack';
    this.deps.bus.publish(this.deps.subjects.gateway(session.node), { type: 'deliver', sessionId: session.id, frame: frameOf(slot.flight.msg), user: this.user });
    this.deps.metrics.deliveries.inc({ via: slot.target.via });
    slot.timer = this.deps.clock.setTimeout(() => this.self({ type: 'ack_due', id, device }), this.deps.ackTimeoutMs);
  }

  /** A sent delivery is final (acked, timed out, read): room in the window for the next waiting one. */
  private freeWindow(slot: Slot): void {
    if (!slot.session) return;
    for (const next of this.windows.release(slot.session.id)) if (this.slots.get(slotKey(next.flight.msg.id, next.target.device)) === next) this.send(next);
  }

  private startPush(slot: Slot, token: string, app: string | undefined): void {
    const { msg } = slot.flight;
    const device = slot.target.device;
    const vendor = slot.target.via as PushVendor;
    slot.kind = 'push';
    slot.timer = undefined;
    slot.token = token;
    this.deps.metrics.deliveries.inc({ via: vendor });
    // Section 4: alert pushes carry the user's unread count as the badge.
    const job = { jobId: `${msg.id}:${device}`, user: this.user, device, vendor, token, message: msg, badge: this.mailbox.unread, ...(app === undefined ? {} : { app }) };
    this.deps.pushes.push(job).then(
      (outcome) => this.self({ type: 'push_done', id: msg.id, device, outcome }),
      (err: unknown) => this.self({ type: 'push_done', id: msg.id, device, outcome: { outcome: 'failed', reason: String(err) } }),
    );
  }

  private onPushDone(id: string, device: string, o: PushOutcome): void {
    const slot = this.slots.get(slotKey(id, device));
    if (slot?.kind !== 'push') return;
    this.release(slot, device);
    this.deps.metrics.pushOutcomes.inc({ vendor: slot.target.via, outcome: o.outcome });
    if (o.outcome === 'ok') {
      slot.flight.reached = true;
      return this.finish(slot, 'ok');
    }
    if (o.outcome === 'dead_token') {
      // Section 4: a dead token is removed (hasToken false); the registry only clears it if it is still this one.
      const token = slot.token!;
      clearDeadToken(this.state, device, token);
      this.deps.registry.clearToken(this.user, device, token).catch((err: unknown) => this.deps.log.error({ err, user: this.user, device }, 'clearing a dead token failed'));
      return this.finish(slot, 'dead_token', o.reason);
    }
    // Retries belong to the sender pool; whatever comes back here is final.
    this.finish(slot, 'failed', o.reason);
  }

  private onAckTimeout(id: string, device: string, now: number): void {
    const slot = this.slots.get(slotKey(id, device));
    if (slot?.kind !== 'ack' && slot?.kind !== 'queued') return;
    if (slot.timer) this.deps.clock.clearTimeout(slot.timer);
    this.slots.delete(slotKey(id, device));
    if (slot.kind === 'ack') this.freeWindow(slot);
    const via = slot.target.via as 'pc' | 'mobile';
    this.deps.metrics.ackTimeouts.inc({ kind: via });
    slot.target.outcome = 'ack_timeout';
    slot.flight.open--;
    // A PC falls back once, when the last PC of its decision timed out and none acked (section 4).
    const pcs = slot.decision.targets.filter((t) => t.via === 'pc');
    const fallBack = via === 'mobile' || pcs.every((t) => t.outcome === 'ack_timeout');
    const mayRedeliver = (slot.flight.resent ?? 0) < MAX_DIRECT_REDELIVERIES;
    const routed = fallBack ? decideFallback(this.state, id, { via, device, mayRedeliver }, now) : undefined;
    if (routed?.commands.some((c) => c.type === 'deliver' && c.via === 'mobile' && via === 'mobile')) slot.flight.resent = (slot.flight.resent ?? 0) + 1;
    if (routed) this.carryOut(slot.flight, routed, false);
    else if (fallBack) slot.flight.holdWanted = true; // section 4: nothing left to try -> held
    this.settleIfDone(slot.flight);
  }

  /** Section 4: a session that closes with deliveries unacked (or still waiting in its window) counts them as timed out at once. */
  private onSessionClosed(sessionId: string, now: number): void {
    const waiting = this.windows.close(sessionId);
    for (const slot of waiting) if (slot.kind === 'queued') slot.kind = 'ack';
    if ((this.slotsTable?.size ?? 0) === 0) return;
    const unacked = [...this.slots.values()].filter((s) => s.session?.id === sessionId && (s.kind === 'ack' || s.kind === 'queued'));
    for (const slot of unacked) {
      slot.kind = 'ack';
      slot.session = undefined; // its window is gone
      this.onAckTimeout(slot.flight.msg.id, slot.target.device, now);
    }
  }

  /** Section 4 / push delay: a PC turned active, so pushes still waiting are cancelled and those messages go to the PC. */
  private onPcMaybeActive(now: number): void {
    if ((this.slotsTable?.size ?? 0) === 0 || !pcStatus(this.state, now, this.deps).active) return;
    const replaced = new Set<Flight>();
    for (const [key, slot] of this.slots) {
      if (slot.kind !== 'delay') continue;
      this.deps.clock.clearTimeout(slot.timer!);
      this.slots.delete(key);
      slot.target.outcome = 'cancelled';
      slot.target.detail = 'pc';
      slot.flight.open--;
      replaced.add(slot.flight);
    }
    for (const flight of replaced) {
      this.carryOut(flight, decide(this.state, flight.msg, now, this.deps), false);
      this.settleIfDone(flight);
    }
  }

  private release(slot: Slot, device: string): void {
    if (slot.timer) this.deps.clock.clearTimeout(slot.timer);
    this.slots.delete(slotKey(slot.flight.msg.id, device));
  }

  private finish(slot: Slot, outcome: TargetOutcome, detail?: string): void {
    slot.target.outcome = outcome;
    if (detail !== undefined) slot.target.detail = detail;
    slot.flight.open--;
    this.settleIfDone(slot.flight);
  }

  private settleIfDone(flight: Flight): void {
    if (flight.open > 0 || flight.holding || this.flights.get(flight.msg.id) !== flight) return;
    const { id } = flight.msg;
    if (flight.fromHeld) {
      // Routed again from the held store: it stays held until it reached the user (or was read).
      this.flights.delete(id);
      if (flight.reached) this.mailbox.drop([id], 'delivered').catch((err: unknown) => this.deps.log.error({ err, user: this.user }, 'held message not dropped'));
      return;
    }
    if (flight.holdWanted && !flight.reached && !flight.read) return this.startHold(flight);
    this.flights.delete(id);
    this.recent.add(id);
    this.deps.done(id);
  }

  /** Section 4: holds the message durably, and only then tells the ingress `done` (held_done). */
  private startHold(flight: Flight): void {
    const now = this.deps.clock.now();
    const { msg } = flight;
    const expiresAt = this.mailbox.expiresAt(msg, now);
    if (expiresAt === undefined) {
      // `ttlSeconds: 0` (now or never) or already past its TTL: nothing to keep.
      this.logHeld(flight, 'undeliverable', now);
      this.flights.delete(msg.id);
      this.recent.add(msg.id);
      return this.deps.done(msg.id);
    }
    flight.holding = true;
    this.deps.metrics.messagesHeld.inc({ why: flight.tried ? 'ack_timeout' : 'unreachable' });
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
    this.flights.delete(id);
    this.recent.add(id);
    this.deps.done(id);
    if (flight.read) {
      this.mailbox.drop([id], 'read').catch(() => undefined);
      return;
    }
    if (flight.tried !== undefined) this.logHeld(flight, 'held', now);
    // A session that was not tried opened meanwhile (a PC reconnecting while its old socket timed out): go now.
    const fresh = decide(this.state, flight.msg, now, this.deps).commands.some((c) => c.type === 'deliver' && !flight.tried?.has(c.session.id));
    if (fresh) this.replayHeld();
  }

  /** A fallback decision that ended in held or undeliverable, for the decision history. */
  private logHeld(flight: Flight, route: 'held' | 'undeliverable', now: number): void {
    if (flight.tried === undefined) return; // the first decision already said so
    const decision: Decision = { id: flight.msg.id, route, reason: 'ack_timeout', targets: [], at: now };
    this.history.add(decision);
    this.deps.metrics.messagesRouted.inc({ route });
    this.deps.onRouted?.({ ...copyDecision(decision), user: this.user, node: this.deps.nodeId });
  }

  /** Section 4: the user became reachable; held messages are routed again, in accept order, through the window. */
  private replayHeld(): void {
    if (this.replaying || this.mailbox.heldCount === 0) return;
    if (this.deps.fence && !this.deps.fence.mayAct(this.user)) return;
    this.replaying = true;
    this.mailbox.list(this.deps.clock.now()).then(
      (messages) => this.self({ type: 'held_loaded', messages }),
      (err: unknown) => {
        this.deps.log.error({ err, user: this.user }, 'held messages could not be read');
        this.self({ type: 'held_loaded', messages: [] });
      },
    );
  }

  private routeHeld(messages: ChatMessage[], now: number): void {
    this.replaying = false;
    for (const msg of messages) {
      if (this.flights.has(msg.id)) continue;
      const routed = decide(this.state, msg, now, this.deps);
      if (routed.decision.route === 'held' || routed.decision.route === 'undeliverable') return; // still nobody: they stay held
      const flight: Flight = { msg, open: 0, fromHeld: true };
      this.flights.set(msg.id, flight);
      this.carryOut(flight, routed, true);
      this.settleIfDone(flight);
    }
  }

  /**
   * Section 4 read sync: pending pushes (push delay), waiting and unacked deliveries of these messages are cancelled,
   * they are no longer held, the badge drops (durably), the user's other sessions get `clear`, offline phones a
   * silent clear push.
   */
  private async onRead(ids: string[], readerSession: string | undefined, now: number): Promise<number> {
    const wanted = new Set(ids);
    for (const [key, slot] of [...(this.slotsTable ?? [])]) {
      if (!wanted.has(slot.flight.msg.id) || slot.kind === 'push') continue;
      if (slot.timer) this.deps.clock.clearTimeout(slot.timer);
      this.slots.delete(key);
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
    const badge = await this.mailbox.read(ids);
    for (const { node, msg } of clearFrames(this.state, ids, badge, readerSession, this.user)) this.deps.bus.publish(this.deps.subjects.gateway(node), msg);
    for (const job of clearPushJobs(this.state, this.user, ids, badge, now)) {
      this.deps.pushes.push(job).then(
        (o) => this.deps.metrics.clearPushes.inc({ vendor: job.vendor, outcome: o.outcome }),
        () => this.deps.metrics.clearPushes.inc({ vendor: job.vendor, outcome: 'failed' }),
      );
    }
    return badge;
  }

  private async answer(q: OwnerQuery, now: number): Promise<OwnerReply> {
    if (q.type === 'decisions_query') return { type: 'decisions', decisions: this.history.newest(q.limit) };
    if (q.type === 'read_query') {
      try {
        return { type: 'read_done', unread: await this.onRead(q.ids, undefined, now) };
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
      held,
      unread: this.mailbox.unread,
    };
    return { type: 'user_view', view };
  }
}

type PushVendor = Extract<Command, { type: 'push' }>['vendor'];

function slotKey(id: string, device: string): string {
  return `${id}\n${device}`;
}

/** Section 2 server frame; absent fields are left out rather than sent as null. */
function frameOf(msg: ChatMessage): MessageFrame {
  const f: Partial<MessageFrame> = { type: 'message', id: msg.id };
  if (msg.from !== undefined) f.from = msg.from;
  if (msg.title !== undefined) f.title = msg.title;
  if (msg.text !== undefined) f.text = msg.text;
  if (msg.data !== undefined) f.data = msg.data;
  f.ts = msg.acceptedAt;
  return f as MessageFrame;
}
