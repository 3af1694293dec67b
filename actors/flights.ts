import type { Bus } from '../bus/bus.js';
import type { OwnerFence } from '../bus/fence.js';
import type { Subjects } from '../bus/subjects.js';
import { routedEvent, type ChatMessage, type Decision, type DecisionTarget, type MessageFrame, type OwnerMessage, type OwnerQuery, type OwnerReply, type RoutedEvent, type TargetOutcome } from '../protocol/index.js';
import type { Clock, Timer } from '../base/clock.js';
import type { Deadline, DeadlineQueue } from '../base/deadline-queue.js';
import { withoutKey } from '../base/young-tables.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { PushOutcome, PushSink } from '../protocol/push.js';
import type { DeviceRegistry, PolicyStore } from '../store/types.js';
import { decide, decideFallback, pcStatus, type Command, type DecideOptions, type Routed } from './decide.js';
import { DeliveryWindows } from './delivery-window.js';
import { DecisionHistory } from './decision-history.js';
import { RecentIds } from './history.js';
import { policyOf, pushDelayMsOf, pushesSilent } from './policy.js';
import { UserMailbox, type HeldListing, type MailboxDeps } from './mailbox.js';
import { clearDeadToken, type UserState } from './user-state.js';

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
  /** Section 4: whether a vendor has credentials for an app (DecideOptions.canPush); default every vendor. */
  canPush?: DecideOptions['canPush'];
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
  /**
   * Each decision as it is made, called synchronously: the event shares its `targets` with the decision, whose
   * outcomes are filled in later, so a listener that keeps it (rather than logging or encoding it at once) copies it.
   */
  onRouted?(e: RoutedEvent): void;
  /** Durable per-user policies (section 4, policy); read at load and on `policy_changed`. Absent: the default policy. */
  policies?: Pick<PolicyStore, 'get'>;
  /** Where decisions are kept for `GET …/decisions`, past passivation (the directory's). Absent: one per actor. */
  history?: DecisionHistory;
  /** Ack timeouts of all actors on one timer (the directory's); without it each delivery gets its own clock timer. */
  ackDeadlines?: DeadlineQueue<AckDue>;
}

/** An ack timeout owed to a user's actor: it comes back as `ack_due` through the user's mailbox. */
export interface AckDue {
  user: string;
  id: string;
  device: string;
  /** The timer it comes from (`Slot.timed`): a later delivery of the same message to the same device is not it. */
  seq: number;
}

/**
 * Numbers every slot timer of this process, ack timeouts and push delays (`Slot.timed`, `AckDue.seq`, `push_due`'s
 * `seq`). A timer that already fired waits in the mailbox as a message and cannot be cancelled; if, before it is
 * read, the slot was replaced by another for the same message and device (a replaced or closed session timed the
 * delivery out and the fallback sent the message to the same device again; a held replay with a push delay), the
 * slot key is the same: the number tells the old timer from the new slot's (issue 13 review; PROTOCOL.md section 4:
 * each delivery has its own ack timeout and push delay). One counter for the process, not one per actor: a live
 * actor stays as small as it was.
 */
let slotTimers = 0;

/** Gateway traffic plus what the actor sends itself: timers and push outcomes come back as messages, never as callbacks that touch state. */
export type UserActorMessage =
  | OwnerMessage
  | { type: 'ack_due'; id: string; device: string; seq: number }
  | { type: 'push_due'; id: string; device: string; seq: number }
  | { type: 'push_done'; id: string; device: string; outcome: PushOutcome }
  /** A read sync's clear push met a dead token (UserActor.onRead): removed as a message push's would be. */
  | { type: 'clear_push_dead'; device: string; token: string }
  /** The reads that waited out CLEAR_PUSH_INTERVAL_MS get their silent clear pushes (UserActor.queueClearPush). */
  | { type: 'clear_push_due' }
  | { type: 'held_done'; id: string; ok: boolean }
  | { type: 'held_loaded'; listing: HeldListing }
  /** UserActor.loadMailbox's try ended: `ok` false when the store failed or timed out. */
  | { type: 'mailbox_loaded'; ok: boolean }
  | { type: 'hold_retry'; id: string }
  /** UserActor.armSessionReplay's timer: what was held after ack timeouts on sessions still open goes out once more. */
  | { type: 'replay_due' }
  /** UserActor.route's bound on waiting behind a replay: these messages go now, replay or not (MAX_WAIT_BEHIND_REPLAY_MS). */
  | { type: 'wait_over'; waiting: ChatMessage[] }
  /**
   * `read` messages that were queued one behind another, run as one read (UserDirectory): one durable write for all,
   * so a client that floods reads costs one disk sync per turn of the mailbox, not one per frame.
   */
  | { type: 'reads'; reads: Extract<OwnerMessage, { type: 'read' }>[] }
  | { type: 'ask'; query: OwnerQuery; reply: (r: OwnerReply) => void };

/** A hold that could not be written is tried again after this long, doubling up to HOLD_RETRY_MAX_MS. */
export const HOLD_RETRY_MS = 500;
export const HOLD_RETRY_MAX_MS = 30_000;

/** A message whose targets are not all final yet; settled when `open` drops to 0. */
export interface Flight {
  msg: ChatMessage;
  open: number;
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
  /**
   * A vendor push of it failed for good (a dead token, a refusal): with no target reaching the user it is held, like a
   * message with nothing left to try after an ack timeout (section 4), and the held decision says `push_failed`.
   */
  pushFailed?: boolean;
  /** Its delayed push was withheld: the policy turned `"never"` during the push delay (the held decision says `policy_never`). */
  withheld?: boolean;
  /** Sessions this message was sent to (an array: nearly always one, and a Set per message was 2% of the garbage): a hold re-routes at once only to a session not tried. */
  tried?: string[];
}

/** One target in flight: awaiting an ack, a push delay, or a vendor answer. */
export interface Slot {
  /** Its key in the slots table (`slotKey`), made once: the ack, the release and the window look it up. */
  key: string;
  flight: Flight;
  decision: Decision;
  target: DecisionTarget;
  /** `queued`: waiting for room in the session's window (flow control, section 2). */
  kind: 'ack' | 'delay' | 'push' | 'queued';
  timer?: Timer;
  /** A sent delivery's ack timeout, when the directory keeps them on one timer. */
  deadline?: Deadline;
  /** Its current timer's number (`slotTimers`): the `ack_due` or `push_due` that belongs to this slot carries it. */
  timed?: number;
  token?: string;
  /** A direct delivery's session. */
  session?: { node: string; id: string };
}

/**
 * The messages of one user in flight (PROTOCOL.md section 4): each decision's targets carried out (deliveries through
 * the session's flow-control window, vendor pushes, push delays), ack timeouts and their fallbacks, sessions that
 * close with deliveries unacked. UserActor adds what the user does (sessions, held messages, reads, queries) and
 * decides, in `settleIfDone`, what happens once a message has no target left in flight.
 */
export abstract class Flights {
  // Created on first use: a live actor that only ever sees session traffic should not pay for empty tables.
  protected flightsTable?: Map<string, Flight>;
  protected slotsTable?: Map<string, Slot>;
  protected readonly recent = new RecentIds();
  private ownHistory?: DecisionHistory;
  protected readonly windows: DeliveryWindows<Slot>;
  protected readonly mailbox: UserMailbox;

  constructor(
    readonly user: string,
    readonly state: UserState,
    protected readonly deps: UserActorDeps,
    /** Sends a message back into this user's mailbox (through the directory, so it is counted). */
    protected readonly self: (msg: UserActorMessage) => void,
  ) {
    this.windows = new DeliveryWindows(deps.maxInflight);
    this.mailbox = new UserMailbox(user, deps);
  }

  protected get history(): DecisionHistory {
    return this.deps.history ?? (this.ownHistory ??= new DecisionHistory());
  }

  protected get flights(): Map<string, Flight> {
    return (this.flightsTable ??= new Map());
  }

  protected get slots(): Map<string, Slot> {
    return (this.slotsTable ??= new Map());
  }

  /** Forgets a flight; an emptied table is dropped rather than shrunk (base/young-tables.ts: no old-space garbage per message). */
  protected dropFlight(id: string): void {
    if (this.flightsTable !== undefined) this.flightsTable = withoutKey(this.flightsTable, id);
  }

  /** Forgets a slot, as `dropFlight` does a flight. */
  protected dropSlot(key: string): void {
    if (this.slotsTable !== undefined) this.slotsTable = withoutKey(this.slotsTable, key);
  }

  /** Messages routed and not yet finished (`done` not yet called for them): a partition handed off waits for them. */
  get unfinished(): number {
    return this.flightsTable?.size ?? 0;
  }

  /** Pending acks, push delays or vendor answers: such an actor must not passivate. */
  get busy(): boolean {
    return (this.slotsTable?.size ?? 0) > 0 || (this.flightsTable?.size ?? 0) > 0;
  }

  /** Clears every timer; the node is stopping. */
  dispose(): void {
    for (const slot of this.slotsTable?.values() ?? []) this.stopTimers(slot);
    this.slotsTable?.clear();
  }

  /** A flight has no target left in flight (or none to begin with): done, held, or dropped from the held store. */
  protected abstract settleIfDone(flight: Flight): void;

  /** Records a decision and executes its commands; a device that already has this message in flight is skipped. */
  protected carryOut(flight: Flight, routed: Routed, delayPushes: boolean): void {
    const { id } = flight.msg;
    if (this.deps.fence && !this.deps.fence.mayAct(this.user)) return; // fenced: a timer fired after the lease was lost
    let commands = routed.commands;
    let decision = routed.decision;
    // A first decision for a message (the common case) has no slot yet: its commands and decision are taken as they
    // are; only a message with a device already in flight gets filtered copies.
    const slots = this.slotsTable;
    if (slots !== undefined && slots.size > 0 && commands.some((c) => slots.has(slotKey(id, c.device)))) {
      const kept: Command[] = [];
      const targets: DecisionTarget[] = [];
      commands.forEach((c, i) => {
        if (slots.has(slotKey(id, c.device))) return;
        kept.push(c);
        targets.push(routed.decision.targets[i]);
      });
      commands = kept;
      decision = { ...routed.decision, targets };
    }
    if (decision.route === 'held') flight.holdWanted = true;
    else if (commands.length > 0) this.mailbox.delivered(id); // section 4: unread counts messages delivered to the user
    this.history.add(this.user, decision);
    this.deps.metrics.messagesRouted.inc({ route: decision.route, reason: decision.reason });
    this.deps.onRouted?.(routedEvent(decision, this.user, this.deps.nodeId));
    commands.forEach((c, i) => {
      const slot: Slot = { key: slotKey(id, c.device), flight, decision, target: decision.targets[i], kind: 'ack' };
      this.slots.set(slot.key, slot);
      flight.open++;
      if (c.type === 'deliver') {
        slot.session = c.session;
        const tried = (flight.tried ??= []);
        if (!tried.includes(c.session.id)) tried.push(c.session.id);
        // Section 2 flow control: past SWITCHBOARD_MAX_INFLIGHT unacked, it waits in the session's window.
        if (this.windows.admit(c.session.id, slot)) this.send(slot);
        else slot.kind = 'queued';
      } else if (delayPushes && pushDelayMsOf(this.state.policy, this.deps.pushDelayMs) > 0) {
        // Grace before a vendor push (the user's pushDelaySeconds, else the node's): cancelled if a PC turns active meanwhile (onPcMaybeActive).
        slot.kind = 'delay';
        const seq = (slot.timed = ++slotTimers);
        slot.timer = this.deps.clock.setTimeout(() => this.self({ type: 'push_due', id, device: c.device, seq }), pushDelayMsOf(this.state.policy, this.deps.pushDelayMs));
      } else {
        this.startPush(slot, c.token, c.app);
      }
    });
  }

  /** Sends a direct delivery the window admitted; its ack timeout starts now. */
  protected send(slot: Slot): void {
    const { id } = slot.flight.msg;
    const device = slot.target.device;
    const session = slot.session!;
    slot.kind = 'ack';
    this.deps.bus.publish(this.deps.subjects.gateway(session.node), { type: 'deliver', sessionId: session.id, frame: frameOf(slot.flight.msg), user: this.user });
    this.deps.metrics.deliveries.inc({ via: slot.target.via });
    const seq = (slot.timed = ++slotTimers);
    if (this.deps.ackDeadlines) slot.deadline = this.deps.ackDeadlines.add({ user: this.user, id, device, seq });
    else slot.timer = this.deps.clock.setTimeout(() => this.self({ type: 'ack_due', id, device, seq }), this.deps.ackTimeoutMs);
  }

  /** Clears a slot's push-delay timer or ack timeout, whichever it has. */
  protected stopTimers(slot: Slot): void {
    if (slot.timer) this.deps.clock.clearTimeout(slot.timer);
    if (slot.deadline !== undefined) this.deps.ackDeadlines?.cancel(slot.deadline); // 0 is a handle like any other
    slot.timer = slot.deadline = undefined;
  }

  /** A sent delivery is final (acked, timed out, read): room in the window for the next waiting one. */
  protected freeWindow(slot: Slot): void {
    if (!slot.session) return;
    for (const next of this.windows.release(slot.session.id)) if (this.slots.get(next.key) === next) this.send(next);
  }

  /**
   * Hands a slot's vendor push to the pool. Quiet hours (section 4) are judged now, when the push goes out, not when
   * it was decided: a push delay (`pushDelaySeconds`, up to an hour) may start or end them; the decision's target
   * records what was sent.
   */
  protected startPush(slot: Slot, token: string, app: string | undefined): void {
    const { msg } = slot.flight;
    const device = slot.target.device;
    const vendor = slot.target.via as PushVendor;
    slot.kind = 'push';
    slot.timer = undefined;
    slot.token = token;
    if (pushesSilent(policyOf(this.state.policy), msg, this.deps.clock.now())) slot.target.silent = true;
    else delete slot.target.silent;
    // Section 4: alert pushes carry the user's unread count as the badge.
    const job = {
      jobId: `${msg.id}:${device}`, user: this.user, device, vendor, token, message: msg, badge: this.mailbox.unread,
      ...(app === undefined ? {} : { app }), ...(slot.target.silent ? { silent: true as const } : {}),
    };
    this.deps.pushes.push(job).then(
      (outcome) => this.self({ type: 'push_done', id: msg.id, device, outcome }),
      (err: unknown) => this.self({ type: 'push_done', id: msg.id, device, outcome: { outcome: 'failed', reason: String(err) } }),
    );
  }

  protected onPushDone(id: string, device: string, o: PushOutcome): void {
    const slot = this.slots.get(slotKey(id, device));
    if (slot?.kind !== 'push') return;
    this.release(slot);
    this.deps.metrics.pushOutcomes.inc({ vendor: slot.target.via, outcome: o.outcome });
    if (o.outcome === 'ok') {
      slot.flight.reached = true;
      // A push counts as a delivery once the vendor accepted it, never when it failed.
      this.deps.metrics.deliveries.inc({ via: slot.target.via });
      this.observeDelivery(slot, this.deps.clock.now());
      return this.finish(slot, 'ok');
    }
    if (o.outcome === 'dead_token') {
      this.removeDeadToken(device, slot.token!);
      this.pushFailedFor(slot.flight);
      return this.finish(slot, 'dead_token', o.reason);
    }
    // Retries belong to the sender pool; whatever comes back here is final.
    this.pushFailedFor(slot.flight);
    this.finish(slot, 'failed', o.reason);
  }

  /**
   * Section 5: a token the vendor called dead is removed (hasToken false, `token_removed` published by the registry);
   * the registry clears it only if it is still this one (a new token registered meanwhile stays).
   */
  protected removeDeadToken(device: string, token: string): void {
    clearDeadToken(this.state, device, token);
    this.deps.registry.clearToken(this.user, device, token).catch((err: unknown) => this.deps.log.error({ err, user: this.user, device }, 'clearing a dead token failed'));
  }

  /** Delivery latency of `slot`'s message, reached at `now` (ms): held ones apart (metrics.heldDeliverySeconds). */
  protected observeDelivery(slot: Slot, now: number): void {
    const seconds = Math.max(0, now - slot.flight.msg.acceptedAt) / 1000;
    (slot.flight.fromHeld ? this.deps.metrics.heldDeliverySeconds : this.deps.metrics.deliverySeconds).observe({ via: slot.target.via }, seconds);
  }

  /**
   * "Nothing is missed": a message whose push failed for good is held unless another target reaches the user (its
   * flight settles once every target is final; `settleIfDone` holds it only if none reached). It was answered 202.
   */
  protected pushFailedFor(flight: Flight): void {
    flight.pushFailed = true;
    flight.holdWanted = true;
  }

  /**
   * A delivery was not acked in time (`seq`: the send its `ack_due` timed, see AckDue), or its session closed or
   * was replaced (no `seq`: whatever is in flight to that device now). Falls back per section 4.
   */
  protected onAckTimeout(id: string, device: string, now: number, seq?: number): void {
    const slot = this.slots.get(slotKey(id, device));
    if (slot?.kind !== 'ack' && slot?.kind !== 'queued') return;
    if (seq !== undefined && slot.timed !== seq) return; // the timeout of an earlier delivery, already timed out
    this.stopTimers(slot);
    this.dropSlot(slotKey(id, device));
    if (slot.kind === 'ack') this.freeWindow(slot);
    const via = slot.target.via as 'pc' | 'mobile';
    this.deps.metrics.ackTimeouts.inc({ kind: via });
    slot.target.outcome = 'ack_timeout';
    slot.flight.open--;
    // A PC falls back once, when the last PC of its decision timed out and none acked (section 4).
    const pcs = slot.decision.targets.filter((t) => t.via === 'pc');
    const fallBack = via === 'mobile' || pcs.every((t) => t.outcome === 'ack_timeout');
    // Devices the decision already reached by the mobile path (policy "always") are not sent to again.
    const tried = slot.decision.targets.filter((t) => t.via !== 'pc').map((t) => t.device);
    const routed = fallBack ? decideFallback(this.state, id, { via, device }, now, { urgent: slot.flight.msg.urgent, tried, canPush: this.deps.canPush }) : undefined;
    if (routed) this.carryOut(slot.flight, routed, false);
    else if (fallBack) slot.flight.holdWanted = true; // section 4: nothing left to try -> held
    this.settleIfDone(slot.flight);
  }

  /** Section 4: a session that closes with deliveries unacked (or still waiting in its window) counts them as timed out at once. */
  protected onSessionClosed(sessionId: string, now: number): void {
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

  /**
   * Section 4 / push delay: a PC turned active, so pushes still waiting are cancelled and those messages go to the PC;
   * so are deliveries to phones still waiting in a window (flow control), never sent: PC active, not to the phone.
   */
  protected onPcMaybeActive(now: number): void {
    if ((this.slotsTable?.size ?? 0) === 0 || !pcStatus(this.state, now, this.deps).active) return;
    if (policyOf(this.state.policy).mobile === 'always') return; // the phone gets it while the PC is active too
    let replaced: Set<Flight> | undefined; // made only when a push delay is found: this runs on every ack of an active PC
    let waiting = false;
    for (const [key, slot] of this.slots) {
      if (slot.kind === 'queued' && slot.target.via === 'mobile') waiting = true;
      if (slot.kind !== 'delay') continue;
      replaced ??= new Set();
      this.deps.clock.clearTimeout(slot.timer!);
      this.dropSlot(key);
      slot.target.outcome = 'cancelled';
      slot.target.detail = 'pc';
      slot.flight.open--;
      replaced.add(slot.flight);
    }
    for (const flight of replaced ?? []) {
      this.carryOut(flight, decide(this.state, flight.msg, now, this.deps), false);
      this.settleIfDone(flight);
    }
    if (waiting) this.redecideWaiting(now, (slot) => slot.target.via === 'mobile', 'pc');
  }

  /**
   * Section 4 is the rule when a delivery goes out, not only when it was decided: one still waiting in a session's
   * window (flow control, section 2: it follows as acks come in, maybe many ack timeouts later) whose session is no
   * longer where the rule sends its message (the phone went to the background, which counts as offline for direct
   * delivery; the PC turned active, so not the phone; the PC turned inactive with a phone reachable, so not the PC)
   * is cancelled, and its message decided again now. Those sent and not acked keep their ack timeout.
   */
  protected redecideWaiting(now: number, which: (slot: Slot) => boolean, detail: string): void {
    if ((this.slotsTable?.size ?? 0) === 0) return;
    let moved: Set<Flight> | undefined;
    for (const [key, slot] of this.slots) {
      if (slot.kind !== 'queued' || slot.session === undefined || !which(slot)) continue;
      const sessionId = slot.session.id;
      if (decide(this.state, slot.flight.msg, now, this.deps).commands.some((c) => c.type === 'deliver' && c.session.id === sessionId)) continue;
      this.dropSlot(key);
      this.windows.unqueue(sessionId, slot);
      slot.target.outcome = 'cancelled';
      slot.target.detail = detail;
      slot.flight.open--;
      (moved ??= new Set()).add(slot.flight);
    }
    for (const flight of moved ?? []) {
      this.carryOut(flight, decide(this.state, flight.msg, now, this.deps), false);
      this.settleIfDone(flight);
    }
  }

  protected release(slot: Slot): void {
    this.stopTimers(slot);
    this.dropSlot(slot.key);
  }

  protected finish(slot: Slot, outcome: TargetOutcome, detail?: string): void {
    slot.target.outcome = outcome;
    if (detail !== undefined) slot.target.detail = detail;
    slot.flight.open--;
    this.settleIfDone(slot.flight);
  }
}

type PushVendor = Extract<Command, { type: 'push' }>['vendor'];

export function slotKey(id: string, device: string): string {
  return `${id}\n${device}`;
}

/** Section 2 server frame; absent fields are left out rather than sent as null. */
export function frameOf(msg: ChatMessage): MessageFrame {
  const f: Partial<MessageFrame> = { type: 'message', id: msg.id };
  if (msg.from !== undefined) f.from = msg.from;
  if (msg.title !== undefined) f.title = msg.title;
  if (msg.text !== undefined) f.text = msg.text;
  if (msg.data !== undefined) f.data = msg.data;
  f.ts = msg.acceptedAt;
  return f as MessageFrame;
}
