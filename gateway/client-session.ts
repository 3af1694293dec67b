import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import type { Bus } from '../bus/bus.js';
import type { Subjects } from '../bus/subjects.js';
import {
  CLOSE, HELLO_TIMEOUT_MS, MAX_FRAME_BYTES, MAX_HELLO_TOKEN_CHARS, SwitchboardError, decodeClientFrame, idleAfterMsOf, type ClearFrame, type ClientFrame, type ClientKind, type Decoded, type ErrorCode, type MessageFrame, type MobileOs, type OwnerMessage, type PolicyFrame, type ServerFrame,
} from '../protocol/index.js';
import type { Clock, Timer } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import { freshWhenEmptied } from '../base/young-tables.js';
import type { DeviceRegistry, PolicyStore } from '../store/types.js';
import { verifyClientToken, type ClientIdentity } from './auth.js';
import { dispatchFrame, type SessionContext } from './handlers/index.js';
import type { RegistrationRules } from './registration-rules.js';
import { TokenBucket } from './token-bucket.js';
import type { GatewayConfig } from './deps.js';
import type { WriteCork } from './write-cork.js';

export interface SessionDeps {
  config: GatewayConfig;
  nodeId: string;
  bus: Bus;
  subjects: Subjects;
  registry: DeviceRegistry;
  registration: RegistrationRules;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  jwtKey: Uint8Array;
  /** The user's policy gives `welcome` its `idleAfterMs` (section 2). Absent: the default 60000. */
  policies?: Pick<PolicyStore, 'get'>;
}

/** This many rejected frames in a row close the connection (4400): a client that only sends garbage is broken. */
export const MAX_CONSECUTIVE_BAD_FRAMES = 100;
/** Frames held while the hello token is verified (it takes well under a millisecond). */
const MAX_FRAMES_BEFORE_WELCOME = 64;
/** After our close frame, a peer that does not finish the close handshake in this time is cut off. */
export const CLOSE_GRACE_MS = 3000;
/** Close code for a client that does not read (RFC 6455 "try again later"). */
export const CLOSE_SLOW_CONSUMER = 1013;

type State = 'awaiting_hello' | 'authenticating' | 'open' | 'closing';

/** The error code a refusing close code stands for (section 2 close codes; README "Error codes"). */
const REFUSALS = new Map<number, ErrorCode>([
  [CLOSE.protocolViolation, 'protocol_violation'],
  [CLOSE.unauthenticated, 'unauthorized'],
  [CLOSE.forbidden, 'forbidden'],
  [CLOSE.rateLimited, 'rate_limited'],
]);

// A random prefix per process keeps ids from an earlier run of the same node id apart from this run's.
const BOOT = randomBytes(6).toString('base64url');
let sessionCounter = 0;
export function nextSessionId(): string {
  return BOOT + (++sessionCounter).toString(36);
}

/**
 * One WebSocket client from upgrade to close (PROTOCOL.md section 2): hello within 5 s, then frames through
 * the handler dispatch, with a frame rate limit and a bounded send buffer.
 */
export class ClientSession {
  /** Unique on this node across restarts; short and flat, because the owner keeps it in every session's state. */
  readonly id = nextSessionId();
  /** Resolves once the socket is closed and the owner told. */
  readonly closed: Promise<void>;
  private state: State = 'awaiting_hello';
  /** When this connection was accepted (hello), by this gateway's clock: the owner keeps the newest session of a device. */
  private openedAt = 0;
  /** Who the session is for and what the frame handlers get, once it is open; it also keeps when the client was last heard. */
  private context?: OpenSession;
  private readonly bucket: TokenBucket;
  private readonly heldFrames: string[] = [];
  /**
   * Ids of deliveries sent and not yet acked, each with how many copies were sent (section 2: an ack of a delivery
   * the session was sent never counts against the frame rate, so each copy of a message sent twice, as a replay after
   * ack timeouts does, has a free ack: a stalled client that catches up acks both). The owner's window keeps this
   * near SWITCHBOARD_MAX_INFLIGHT ids; the bound only guards against a misbehaving owner.
   */
  private sentIds = new Map<string, number>();
  private badFrames = 0;
  /** Something (a frame or a pong) came since the last heartbeat ping. */
  private alive = true;
  private closeCode?: number;
  /** The answer of the last register/unregister frame still in flight; later answers wait for it (in order). */
  private registerTail?: Promise<void>;
  private helloTimer?: Timer;
  private terminateTimer?: Timer;

  /**
   * `socket` and `cork` (optional): the connection under `ws` and the gateway's WriteCork, so frames sent in one
   * turn of the event loop leave in one write (issue 13); without them every frame is its own write.
   */
  constructor(private readonly ws: WebSocket, private readonly deps: SessionDeps, private readonly socket?: Writable, private readonly cork?: WriteCork) {
    const { clock, config } = deps;
    this.bucket = new TokenBucket(config.frameRate, config.frameRate * 2, clock.now());
    this.helloTimer = clock.setTimeout(() => this.close(CLOSE.helloTimeout, 'no hello in time'), HELLO_TIMEOUT_MS);
    this.closed = new Promise((resolve) => ws.once('close', (code) => { this.onClosed(code); resolve(); }));
    ws.on('message', (data, isBinary) => { this.alive = true; this.onMessage(data, isBinary); });
    ws.on('pong', () => { this.alive = true; });
    ws.on('error', (err) => this.onSocketError(err));
  }

  deliver(frame: MessageFrame): void {
    if (this.state !== 'open') return;
    const copies = this.sentIds.get(frame.id);
    this.sentIds.set(frame.id, copies === undefined ? 1 : copies + 1);
    if (this.sentIds.size > maxSentIds(this.deps.config.maxInflight)) this.sentIds.delete(this.sentIds.keys().next().value!);
    this.send(frame);
  }

  /**
   * An ack of a sent delivery: true once per copy sent. An emptied table is replaced rather than shrunk
   * (base/young-tables.ts).
   */
  private forgetSent(id: string): boolean {
    const copies = this.sentIds.get(id);
    if (copies === undefined) return false;
    if (copies > 1) this.sentIds.set(id, copies - 1);
    else this.sentIds = freshWhenEmptied(this.sentIds, id);
    return true;
  }

  /** A frame that is not a delivery (section 2 `clear`, `policy`). */
  sendFrame(frame: ClearFrame | PolicyFrame): void {
    if (this.state === 'open') this.send(frame);
  }

  /**
   * Called every heartbeat interval. A socket that neither sent anything nor answered the last ping is dead
   * (a vanished peer never sends a FIN): cut it off so its session does not stay open forever.
   */
  heartbeat(): void {
    if (this.state === 'closing') return;
    if (!this.alive) {
      this.deps.log.debug({ session: this.id, user: this.context?.user }, 'dead connection cut off');
      this.state = 'closing';
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /**
   * Closes with `code` and `reason`. A refusal (4400, 4401, 4403, 4429) first sends its error frame, so the client
   * reads the same `{"code","message"}` as every other rejection (README "Error codes"), then the close code.
   */
  close(code: number, reason: string): void {
    if (this.state === 'closing') return;
    const refusal = REFUSALS.get(code);
    if (refusal !== undefined && this.ws.readyState === WebSocket.OPEN && this.ws.bufferedAmount <= this.deps.config.sendBufferBytes) {
      this.cork?.hold(this.socket);
      this.ws.send(JSON.stringify({ type: 'error', code: refusal, message: reason } satisfies ServerFrame));
    }
    this.state = 'closing';
    this.closeCode = code;
    this.clearTimers();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    // A peer that does not read never sees our close frame: cut it off rather than wait for ws's 30 s.
    this.terminateTimer = this.deps.clock.setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'closing') return this.ackWhileClosing(data, isBinary);
    // Section 2: frames over 64 KiB close with 1009. The gateway checks this itself (ws's own maxPayload is a
    // higher backstop, see server.ts) so the client learns why: an error frame, then the close reason.
    if (rawLength(data) > MAX_FRAME_BYTES) return this.tooLarge(rawLength(data));
    if (this.state === 'open' && !isBinary) {
      // Section 2: an ack of a delivery this session was sent never counts against the frame rate limit.
      const decoded = decodeClientFrame(data.toString(), this.context);
      if (decoded.ok && decoded.value.type === 'ack' && this.forgetSent(decoded.value.id)) return this.onFrame(decoded);
      if (!this.bucket.take(this.deps.clock.now())) return this.close(CLOSE.rateLimited, 'too many frames');
      return this.onFrame(decoded);
    }
    if (!this.bucket.take(this.deps.clock.now())) return this.close(CLOSE.rateLimited, 'too many frames');
    if (isBinary) return this.close(CLOSE.protocolViolation, 'binary frames are not allowed');
    const text = data.toString();
    switch (this.state) {
      case 'awaiting_hello':
        return void this.onHello(text);
      case 'authenticating':
        if (this.heldFrames.length >= MAX_FRAMES_BEFORE_WELCOME) return this.close(CLOSE.rateLimited, 'too many frames before welcome');
        this.heldFrames.push(text);
        return;
      case 'open':
        return this.onFrame(decodeClientFrame(text, this.context));
    }
  }

  /**
   * Section 4 (PC active: to no mobile device; an ack stops the fallback): an ack the client sent before it read our
   * close frame (a stopping node's 1001, a replaced session's 4409) still settles its delivery. The owner hears it
   * before this session's `session_close`, which goes out once the socket is closed (`onClosed`), so a delivery the PC
   * has does not time out into a push to the phone. Only acks of deliveries this session was sent; every other frame
   * of a closing session is dropped (it may be closing for a refused token).
   */
  private ackWhileClosing(data: RawData, isBinary: boolean): void {
    if (isBinary || this.context === undefined || this.sentIds.size === 0 || rawLength(data) > MAX_FRAME_BYTES) return;
    const decoded = decodeClientFrame(data.toString(), this.context);
    if (decoded.ok && decoded.value.type === 'ack' && this.forgetSent(decoded.value.id)) dispatchFrame(this.context, decoded.value);
  }

  /** Section 2: the first frame is hello with a valid token, else 4400 (not hello) or 4401 (bad token). */
  private async onHello(text: string): Promise<void> {
    this.clearTimers();
    const decoded = decodeClientFrame(text);
    if (!decoded.ok || decoded.value.type !== 'hello') {
      const refused = helloWithoutToken(text);
      return refused !== undefined ? this.close(CLOSE.unauthenticated, refused) : this.close(CLOSE.protocolViolation, 'first frame must be hello');
    }
    this.state = 'authenticating';
    const check = await verifyClientToken(decoded.value.token, this.deps.jwtKey, this.deps.clock.now());
    if (this.state !== 'authenticating') return; // closed while verifying
    if (!check.ok) {
      this.deps.log.debug({ session: this.id, reason: check.reason }, 'hello refused');
      return this.close(CLOSE.unauthenticated, check.reason);
    }
    const idleAfterMs = await this.idleAfterMs(check.identity.user);
    if (this.state !== 'authenticating') return; // closed while reading the policy
    this.open(check.identity, idleAfterMs);
  }

  /** Section 2: the idle threshold of the user's policy; a store that cannot answer gives the default, not a refusal. */
  private async idleAfterMs(user: string): Promise<number> {
    try {
      return idleAfterMsOf(await this.deps.policies?.get(user));
    } catch (err) {
      this.deps.log.warn({ err, user }, 'policy read failed at hello; welcome carries the default idleAfterMs');
      return idleAfterMsOf(undefined);
    }
  }

  private open(identity: ClientIdentity, idleAfterMs: number): void {
    const { config, bus, subjects, metrics, clock, registry, log } = this.deps;
    this.state = 'open';
    const owner = subjects.owner(identity.user);
    const actions: SessionActions = {
      send: (frame) => this.send(frame),
      reject: (error) => this.reject(error),
      close: (code, reason) => this.close(code, reason),
    };
    this.openedAt = clock.now();
    const context = (this.context = new OpenSession(identity, this.id, this.deps, owner, actions, this.openedAt));
    metrics.sessions.inc({ kind: identity.kind });
    // Welcome goes first: opening may make the owner deliver to (or replace) sessions at once.
    this.send({ type: 'welcome', user: identity.user, device: identity.device, kind: identity.kind, heartbeatMs: config.clientHeartbeatMs, idleAfterMs });
    bus.publish(owner, this.sessionOpen(context.heardAt));
    log.debug({ session: this.id, user: identity.user, device: identity.device, kind: identity.kind }, 'session open');
    // Issue 9: a session of the device opening counts as its token being seen (tokens unseen for long are pruned).
    if (identity.kind === 'mobile') {
      registry.seen(identity.user, identity.device, clock.now()).catch((err: unknown) => log.warn({ err: String(err), user: identity.user, device: identity.device }, 'recording a token as seen failed'));
    }
    for (const text of this.heldFrames.splice(0)) if (this.state === 'open') this.onFrame(decodeClientFrame(text, this.context));
  }

  /** The user this session is for (after hello). */
  get user(): string | undefined {
    return this.state === 'open' ? this.context?.user : undefined;
  }

  /**
   * Cluster takeover: the user's partition has a new owner, which knows nothing of this session yet. Sends the
   * session and its last presence again, stamped with when the client was last heard so staleness carries over.
   */
  resync(): void {
    const context = this.context;
    if (this.state !== 'open' || context === undefined) return;
    const { bus } = this.deps;
    bus.publish(context.owner, this.sessionOpen(context.heardAt));
    if (context.lastPresence) bus.publish(context.owner, { ...context.lastPresence, at: context.heardAt });
  }

  /** The `session_open` owner message for this session (at hello, and again on a takeover resync). */
  private sessionOpen(at: number): OwnerMessage {
    const { user, device, kind, os, bot } = this.context!;
    return { type: 'session_open', user, device, kind, ...(os ? { os } : {}), ...(bot ? { bot } : {}), session: { node: this.deps.nodeId, id: this.id }, at, openedAt: this.openedAt };
  }

  private onFrame(decoded: Decoded<ClientFrame>): void {
    const ctx = this.context!;
    if (!decoded.ok) {
      if (decoded.error.code === 'forbidden') return this.close(CLOSE.forbidden, 'frame names another user or device');
      // Section 2: any JSON frame refreshes the session, even one we refuse.
      if (decoded.error.code !== 'bad_json') ctx.publish({ type: 'touch', user: ctx.user, device: ctx.device, sessionId: this.id, at: ctx.now() });
      const error = decoded.error;
      if (this.registerTail) this.afterRegisters(() => this.reject(error));
      else this.reject(error);
      return;
    }
    this.badFrames = 0;
    const frame = decoded.value;
    if (frame.type === 'register' || frame.type === 'unregister') return this.afterRegisters(() => dispatchFrame(ctx, frame));
    const done = dispatchFrame(ctx, frame);
    if (done) done.catch((e: unknown) => this.deps.log.error({ err: e, session: this.id }, 'frame handler failed'));
  }

  /**
   * Answers to `register` / `unregister` frames (`registered`, `unregistered` or an error frame) leave in the order
   * the frames came, so a client can tell which frame an answer belongs to (section 2 says nothing of order; this
   * adds it). An error frame for any frame that comes while one is in flight waits too, for the same reason.
   */
  private afterRegisters(step: () => Promise<void> | void): void {
    const tail: Promise<void> = (this.registerTail ?? Promise.resolve())
      .then(step)
      .catch((e: unknown) => this.deps.log.error({ err: e, session: this.id }, 'frame handler failed'))
      .finally(() => { if (this.registerTail === tail) this.registerTail = undefined; });
    this.registerTail = tail;
  }

  /** A frame over 64 KiB (section 2): error frame `frame_too_large`, then close 1009 with the reason "frame too large". */
  private tooLarge(bytes: number): void {
    this.deps.log.debug({ session: this.id, user: this.context?.user, bytes }, 'frame too large');
    this.deps.metrics.frameErrors.inc({ code: 'frame_too_large' });
    this.send({ type: 'error', ...new SwitchboardError('frame_too_large', `${bytes} bytes; the limit is ${MAX_FRAME_BYTES}`).toBody() });
    this.close(CLOSE.tooLarge, 'frame too large');
  }

  /** An error frame; the connection stays unless the client only ever sends rejected frames. */
  private reject(error: SwitchboardError): void {
    this.deps.metrics.frameErrors.inc({ code: error.code });
    this.send({ type: 'error', ...error.toBody() });
    if (!error.temporary && ++this.badFrames >= MAX_CONSECUTIVE_BAD_FRAMES) {
      this.close(CLOSE.protocolViolation, 'too many rejected frames');
    }
  }

  /** Bounded send buffer: a client that does not read is closed instead of growing our memory. */
  private send(frame: ServerFrame): void {
    if (this.state === 'closing' || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > this.deps.config.sendBufferBytes) {
      this.deps.log.info({ session: this.id, user: this.context?.user, buffered: this.ws.bufferedAmount }, 'slow client closed');
      return this.close(CLOSE_SLOW_CONSUMER, 'send buffer full');
    }
    this.cork?.hold(this.socket);
    this.ws.send(JSON.stringify(frame));
  }

  /** ws reports protocol errors (e.g. a frame over maxPayload) and closes the socket itself. */
  private onSocketError(err: Error & { code?: string }): void {
    this.deps.log.debug({ session: this.id, code: err.code, reason: err.message }, 'socket error');
    if (this.state === 'closing') return;
    this.state = 'closing';
    this.closeCode = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? CLOSE.tooLarge : err.code === 'WS_ERR_INVALID_UTF8' ? 1007 : 1002;
    this.clearTimers();
    this.terminateTimer = this.deps.clock.setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
  }

  private onClosed(peerCode: number): void {
    this.clearTimers();
    this.state = 'closing';
    const { metrics, bus, clock, log } = this.deps;
    const code = this.closeCode ?? peerCode;
    metrics.closes.inc({ code: String(code) });
    const context = this.context;
    if (context === undefined) return;
    metrics.sessions.dec({ kind: context.kind });
    const { user, device } = context;
    bus.publish(context.owner, { type: 'session_close', user, device, sessionId: this.id, at: clock.now() });
    log.debug({ session: this.id, user, device, code }, 'session closed');
  }

  private clearTimers(): void {
    if (this.helloTimer) this.deps.clock.clearTimeout(this.helloTimer);
    if (this.terminateTimer) this.deps.clock.clearTimeout(this.terminateTimer);
    this.helloTimer = this.terminateTimer = undefined;
  }
}

/** Sent-and-unacked ids remembered per session: the window plus room for redeliveries after a takeover. */
function maxSentIds(maxInflight: number): number {
  return Math.max(1024, 4 * maxInflight);
}

/** Bytes of a received WebSocket message, whatever form ws handed it in. */
function rawLength(data: RawData): number {
  return Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
}

/**
 * Why a `{"type":"hello"}` without a usable token is unauthenticated (4401, not a protocol violation): `token missing`,
 * or what is wrong with the one it has (a token over MAX_HELLO_TOKEN_CHARS was reported missing); undefined when the
 * frame is no hello.
 */
function helloWithoutToken(text: string): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || (v as { type?: unknown }).type !== 'hello') return undefined;
  const token = (v as { token?: unknown }).token;
  if (token === undefined) return 'token missing';
  if (typeof token !== 'string') return 'token must be a string';
  return `token longer than ${MAX_HELLO_TOKEN_CHARS} characters`;
}

/** What an open session's context needs of its `ClientSession` (rare paths: answers, refusals, closing). */
type SessionActions = Pick<SessionContext, 'send' | 'reject' | 'close'>;

/**
 * The `SessionContext` of an open session: one object with every field set in its constructor (V8 keeps them in the
 * object itself) and its methods on the prototype. It also keeps when the client was last heard and its last
 * presence report, which `ClientSession.resync` sends again to a new owner after a takeover.
 *
 * Issue 13: it replaced a spread copy of the identity plus one closure per method, which left half the fields in a
 * separate property store and `now()` / `publish()` each behind a per-session closure and its context. At 10,000
 * msgs/s over 500 users every ack finds its session cold, and reading four fields and `now()` took 2.3-2.7 µs of the
 * 5.8-6.9 µs an ack cost in `dispatchFrame`; with this class an ack costs 2.7-2.8 µs there (timed in an instrumented
 * build; bench/README.md, "A seventh VM").
 */
class OpenSession implements SessionContext {
  readonly user: string;
  readonly device: string;
  readonly kind: ClientKind;
  readonly os: MobileOs | undefined;
  /** The PC token's `bot` claim (issue 10 part 5). */
  readonly bot: true | undefined;
  readonly registry: DeviceRegistry;
  readonly registration: RegistrationRules;
  /** Epoch ms the client was last heard: the `at` of the last owner message published for it (its frames' time). */
  heardAt: number;
  lastPresence: Extract<OwnerMessage, { type: 'presence' }> | undefined = undefined;
  private readonly clock: Clock;
  private readonly bus: Bus;

  constructor(
    identity: ClientIdentity,
    readonly sessionId: string,
    deps: Pick<SessionDeps, 'registry' | 'registration' | 'clock' | 'bus'>,
    /** The owner subject of the user's partition. */
    readonly owner: string,
    private readonly actions: SessionActions,
    openedAt: number,
  ) {
    this.user = identity.user;
    this.device = identity.device;
    this.kind = identity.kind;
    this.os = identity.os;
    this.bot = identity.bot;
    this.registry = deps.registry;
    this.registration = deps.registration;
    this.clock = deps.clock;
    this.bus = deps.bus;
    this.heardAt = openedAt;
  }

  now(): number {
    return this.clock.now();
  }

  /** Publishes to the owner of the session's user; every owner message a handler sends carries `at` (ms), its time. */
  publish(msg: OwnerMessage): void {
    this.heardAt = 'at' in msg ? msg.at : this.clock.now();
    if (msg.type === 'presence') this.lastPresence = msg;
    this.bus.publish(this.owner, msg);
  }

  send(frame: ServerFrame): void {
    this.actions.send(frame);
  }

  reject(error: SwitchboardError): void {
    this.actions.reject(error);
  }

  close(code: number, reason: string): void {
    this.actions.close(code, reason);
  }
}
