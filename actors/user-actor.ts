import type { Bus } from '../bus/bus.js';
import type { OwnerFence } from '../bus/fence.js';
import type { Subjects } from '../bus/subjects.js';
import type {
  ChatMessage, Decision, DecisionTarget, MessageFrame, OwnerMessage, OwnerQuery, OwnerReply, RoutedEvent, TargetOutcome, UserView,
} from '../protocol/index.js';
import type { Clock, Timer } from '../base/clock.js';
import type { Deadline, DeadlineQueue } from '../base/deadline-queue.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { PushOutcome, PushSink } from '../protocol/push.js';
import type { DeviceRegistry, PolicyStore } from '../store/types.js';
import { decide, decideFallback, MAX_DIRECT_REDELIVERIES, pcStatus, type Command, type DecideOptions, type Routed } from './decide.js';
import { DecisionHistory } from './decision-history.js';
import { copyDecision, RecentIds } from './history.js';
import { policyOf, pushDelayMsOf } from './policy.js';
import {
  clearDeadToken, closeSession, deleteDevice, findMobile, findPc, mergeRegistry, newPcSession, openMobileSession, openPcSession, putDevice, type UserState,
} from './user-state.js';

/** What one user actor needs from the node; the directory's deps minus what only the directory uses. */
export interface UserActorDeps {
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
}

/** Gateway traffic plus what the actor sends itself: timers and push outcomes come back as messages, never as callbacks that touch state. */
export type UserActorMessage =
  | OwnerMessage
  | { type: 'ack_due'; id: string; device: string }
  | { type: 'push_due'; id: string; device: string }
  | { type: 'push_done'; id: string; device: string; outcome: PushOutcome }
  | { type: 'ask'; query: OwnerQuery; reply: (r: OwnerReply) => void };

/** A message whose targets are not all final yet; settled when `open` drops to 0. */
interface Flight {
  msg: ChatMessage;
  open: number;
  /** Direct resends after ack timeouts so far (MAX_DIRECT_REDELIVERIES). */
  resent?: number;
}

/** One target in flight: awaiting an ack, a push delay, or a vendor answer. */
interface Slot {
  flight: Flight;
  decision: Decision;
  target: DecisionTarget;
  kind: 'ack' | 'delay' | 'push';
  timer?: Timer;
  deadline?: Deadline<AckDue>;
  token?: string;
}

/** The behaviour of one user (PROTOCOL.md sections 2-4); the directory's mailbox (directory.ts) runs one message at a time through it. */
export class UserActor {
  // Created on first use: a live actor that only ever sees session traffic should not pay for empty tables.
  private flightsTable?: Map<string, Flight>;
  private slotsTable?: Map<string, Slot>;
  private readonly recent = new RecentIds();
  private ownHistory?: DecisionHistory;

  private get history(): DecisionHistory {
    return this.deps.history ?? (this.ownHistory ??= new DecisionHistory());
  }

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
  ) {}

  /** Pending acks, push delays or vendor answers: such an actor must not passivate. */
  get busy(): boolean {
    return (this.slotsTable?.size ?? 0) > 0 || (this.flightsTable?.size ?? 0) > 0;
  }

  async handle(msg: UserActorMessage): Promise<void> {
    if (!this.loaded) await this.load();
    const now = this.deps.clock.now();
    switch (msg.type) {
      case 'session_open': {
        const session = { id: msg.session.id, node: this.intern(msg.session.node) };
        const old = msg.kind === 'pc'
          ? openPcSession(this.state, newPcSession(session.id, msg.device, session.node, Math.min(msg.at, now), msg.bot === true))
          : openMobileSession(this.state, msg.device, msg.os, { sessionId: session.id, node: session.node, foreground: true });
        // Section 2: a second connection of the same device replaces the first (4409).
        if (old) this.deps.bus.publish(this.deps.subjects.gateway(old.node), { type: 'close_session', sessionId: old.sessionId, code: 4409, reason: 'replaced' });
        return this.onPcMaybeActive(now);
      }
      case 'session_close':
        closeSession(this.state, msg.device, msg.sessionId);
        return;
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
        this.deps.metrics.acks.inc();
        this.deps.metrics.deliverySeconds.observe({ via: slot.target.via }, Math.max(0, now - slot.flight.msg.acceptedAt) / 1000);
        return this.finish(slot, 'acked');
      }
      case 'device_put':
        putDevice(this.state, msg.device, msg.os, msg.token, msg.app);
        return;
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
      case 'ask':
        return msg.reply(this.answer(msg.query));
    }
  }

  /** Clears every timer; the node is stopping. */
  dispose(): void {
    for (const slot of this.slotsTable?.values() ?? []) {
      if (slot.timer) this.deps.clock.clearTimeout(slot.timer);
      if (slot.deadline) this.deps.ackDeadlines?.cancel(slot.deadline);
    }
    this.slotsTable?.clear();
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

  /** `PUT …/policy` stored a new policy: read it back (the store orders concurrent writers, not the bus). */
  private async reloadPolicy(): Promise<void> {
    try {
      this.state.policy = await this.deps.policies?.get(this.user);
    } catch (err) {
      this.deps.log.error({ err, user: this.user }, 'policy load failed');
    }
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
    this.history.add(this.user, decision);
    this.deps.metrics.messagesRouted.inc({ route: decision.route, reason: decision.reason });
    this.deps.onRouted?.({ ...copyDecision(decision), user: this.user, node: this.deps.nodeId });
    commands.forEach((c, i) => {
      const slot: Slot = { flight, decision, target: targets[i], kind: 'ack' };
      this.slots.set(slotKey(id, c.device), slot);
      flight.open++;
      if (c.type === 'deliver') {
        this.deps.bus.publish(this.deps.subjects.gateway(c.session.node), { type: 'deliver', sessionId: c.session.id, frame: frameOf(flight.msg), user: this.user });
        this.deps.metrics.deliveries.inc({ via: c.via });
        if (this.deps.ackDeadlines) slot.deadline = this.deps.ackDeadlines.add({ user: this.user, id, device: c.device });
        else slot.timer = this.deps.clock.setTimeout(() => this.self({ type: 'ack_due', id, device: c.device }), this.deps.ackTimeoutMs);
      } else if (delayPushes && pushDelayMsOf(this.state.policy, this.deps.pushDelayMs) > 0) {
        // Grace before a vendor push (the user's pushDelaySeconds, else the node's): cancelled if a PC turns active meanwhile (onPcMaybeActive).
        slot.kind = 'delay';
        slot.timer = this.deps.clock.setTimeout(() => this.self({ type: 'push_due', id, device: c.device }), pushDelayMsOf(this.state.policy, this.deps.pushDelayMs));
      } else {
        this.startPush(slot, c.token, c.app);
      }
    });
  }

  private startPush(slot: Slot, token: string, app: string | undefined): void {
    const { msg } = slot.flight;
    const device = slot.target.device;
    const vendor = slot.target.via as PushVendor;
    slot.kind = 'push';
    slot.timer = undefined;
    slot.token = token;
    const job = {
      jobId: `${msg.id}:${device}`, user: this.user, device, vendor, token, message: msg,
      ...(app === undefined ? {} : { app }), ...(slot.target.silent ? { silent: true as const } : {}),
    };
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
      // A push counts as a delivery once the vendor accepted it, never when it failed.
      this.deps.metrics.deliveries.inc({ via: slot.target.via });
      this.deps.metrics.deliverySeconds.observe({ via: slot.target.via }, Math.max(0, this.deps.clock.now() - slot.flight.msg.acceptedAt) / 1000);
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
    if (slot?.kind !== 'ack') return;
    this.slots.delete(slotKey(id, device));
    const via = slot.target.via as 'pc' | 'mobile';
    this.deps.metrics.ackTimeouts.inc({ kind: via });
    slot.target.outcome = 'ack_timeout';
    slot.flight.open--;
    // A PC falls back once, when the last PC of its decision timed out and none acked (section 4).
    const pcs = slot.decision.targets.filter((t) => t.via === 'pc');
    const fallBack = via === 'mobile' || pcs.every((t) => t.outcome === 'ack_timeout');
    const mayRedeliver = (slot.flight.resent ?? 0) < MAX_DIRECT_REDELIVERIES;
    // Devices the decision already reached by the mobile path (policy "always") are not sent to again.
    const tried = slot.decision.targets.filter((t) => t.via !== 'pc').map((t) => t.device);
    const routed = fallBack ? decideFallback(this.state, id, { via, device, mayRedeliver }, now, { urgent: slot.flight.msg.urgent, tried, canPush: this.deps.canPush }) : undefined;
    if (routed?.commands.some((c) => c.type === 'deliver' && c.via === 'mobile' && via === 'mobile')) slot.flight.resent = (slot.flight.resent ?? 0) + 1;
    if (routed) this.carryOut(slot.flight, routed, false);
    this.settleIfDone(slot.flight);
  }

  /** Section 4 / push delay: a PC turned active, so pushes still waiting are cancelled and those messages go to the PC. */
  private onPcMaybeActive(now: number): void {
    if ((this.slotsTable?.size ?? 0) === 0 || !pcStatus(this.state, now, this.deps).active) return;
    if (policyOf(this.state.policy).mobile === 'always') return; // the phone gets it while the PC is active too
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
    if (slot.deadline) this.deps.ackDeadlines?.cancel(slot.deadline);
    this.slots.delete(slotKey(slot.flight.msg.id, device));
  }

  private finish(slot: Slot, outcome: TargetOutcome, detail?: string): void {
    slot.target.outcome = outcome;
    if (detail !== undefined) slot.target.detail = detail;
    slot.flight.open--;
    this.settleIfDone(slot.flight);
  }

  private settleIfDone(flight: Flight): void {
    if (flight.open > 0 || !this.flights.has(flight.msg.id)) return;
    this.flights.delete(flight.msg.id);
    this.recent.add(flight.msg.id);
    this.deps.done(flight.msg.id);
    this.history.seal(this.user); // its decisions are final: pack them
  }

  private answer(q: OwnerQuery): OwnerReply {
    if (q.type === 'decisions_query') return { type: 'decisions', decisions: this.history.newest(this.user, q.limit) };
    const pc = pcStatus(this.state, this.deps.clock.now(), this.deps);
    const view: UserView = {
      user: this.user,
      owner: this.deps.nodeId,
      pc: pc.active ? { state: 'active', sessions: pc.sessions } : { state: 'inactive', reason: pc.reason, sessions: pc.sessions },
      devices: (this.state.mobiles ?? []).map((m) => ({ device: m.device, os: m.os, online: m.session?.foreground === true, hasToken: m.token !== undefined })),
      policy: { ...policyOf(this.state.policy) },
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
