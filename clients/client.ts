import { backoffDelay, rateLimitedDelay } from './backoff.js';
import type { ClientEvents, ClientOptions, ConnectionState, WebSocketConstructor, WebSocketLike } from './client-types.js';
import { ClientError, classifyClose, type CloseAction } from './close-codes.js';
import { Emitter } from './emitter.js';
import { checkReadIds, mergeQueuedReads, readChunks, utf8Length } from './read-frames.js';
import { RecentIds } from './recent-ids.js';
import {
  CLIENT_FRAME_TYPES, INACTIVE_REASONS, MAX_CLIENT_FRAME_BYTES, MAX_READ_IDS, PRESENCE_STATES, PRESENCE_STATES_BY_KIND,
  type ClientFrameV11, type ClientKind, type MobileState, type PcPresence, type ServerFrameV11, type Welcome,
} from './wire.js';

/** A `presence` frame as the client keeps it and sends it again after every reconnect. */
type PresenceFrameV11 = Extract<ClientFrameV11, { type: 'presence' }>;

/**
 * The client core (PROTOCOL.md section 2) for browsers, Electron, Node and React Native: hello with a token,
 * reconnect with jittered backoff, ping every `welcome.heartbeatMs`, presence sent again after every reconnect,
 * every message acked, ids deduplicated across reconnects, `clear` and `policy` frames, and close codes turned into errors.
 * It uses only what a browser has; Node 20 has no global WebSocket, so pass `WebSocket` from the `ws` package there.
 */

// What an app handles through this entry point (`switchboard/client`): errors and the frames its events carry.
export { ClientError, type ClientErrorCode, type CloseAction } from './close-codes.js';
export { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export type { ClearFrame, ClientFrameV11, ClientKind, ErrorFrame, InactiveReason, MessageFrame, MobileOs, MobileState, PcPresence, PolicyFrame, ServerFrameV11, Welcome } from './wire.js';
export type { ClientEvents, ClientOptions, ConnectionState, Disconnect, TokenSource, WebSocketConstructor, WebSocketLike } from './client-types.js';

const OPEN = 1;
/** Our own close codes (browsers allow 1000 and 3000-4999 from scripts). */
const CLOSE_NORMAL = 1000;
/** The 4401 close reason of a token whose `nbf` is still ahead (gateway/auth.ts): the same token may pass later. */
const NOT_YET_VALID = 'not yet valid';
const CLOSE_RECONNECT = 4000;

/**
 * One device's connection to Switchboard (PROTOCOL.md section 2). `new` checks the options (`ClientError`
 * `invalid_options`); nothing connects before `start()`. Events: `ClientEvents`.
 */
export class SwitchboardClient extends Emitter<ClientEvents> {
  private ws?: WebSocketLike;
  private connState: ConnectionState = 'idle';
  private welcomeFrame?: Welcome;
  private presence?: PresenceFrameV11;
  /** The session's kind: the last welcome's, else the `kind` claim of the last token (undefined: not known yet). */
  private sessionKind?: ClientKind;
  private readonly pending: ClientFrameV11[] = [];
  private readonly seen: RecentIds;
  private attempt = 0;
  private readonly urls: string[];
  /** Which of `urls` the next connection uses; moves on after a connection that failed or was lost. */
  private urlIndex = 0;
  /** Bumped by every connect, reconnect and stop, so a token fetch that finishes late is dropped. */
  private generation = 0;
  /**
   * The token the server last refused with 4401 for a reason time cannot cure (not `not yet valid`), and that
   * reason. Were the token function to return it again, the client would reconnect forever with a token that can
   * never pass; it stops instead. Forgotten at the next welcome.
   */
  private refused?: { token: string; reason?: string };
  private retryTimer?: ReturnType<typeof setTimeout>;
  private welcomeTimer?: ReturnType<typeof setTimeout>;
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private lastHeardAt = 0;
  private readonly WS: WebSocketConstructor;

  constructor(private readonly opts: ClientOptions) {
    super();
    const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no global WebSocket here (Node 20): pass the `ws` package\'s WebSocket as options.WebSocket');
    this.WS = WS;
    this.urls = typeof opts.url === 'string' ? [opts.url] : Array.isArray(opts.url) ? [...opts.url] : [];
    if (this.urls.length === 0 || this.urls.some((u) => typeof u !== 'string' || u === '')) {
      throw new ClientError('invalid_options', 'options.url: give at least one URL, a ws:// or wss:// URL of /v1/ws (PROTOCOL.md section 2) or a list of them');
    }
    if ((typeof opts.token !== 'string' || opts.token === '') && typeof opts.token !== 'function') {
      throw new ClientError('invalid_options', 'options.token must be a client token (a non-empty string) or a function that returns one (PROTOCOL.md section 2)');
    }
    this.seen = new RecentIds(opts.dedupeSize ?? 10_000);
    if (typeof opts.token === 'string') this.sessionKind = tokenKind(opts.token);
  }

  /**
   * The session's kind (`pc` or `mobile`, section 2), which decides the presence states it may report: the last
   * `welcome.kind`; before the first welcome, the `kind` claim of the token (a string token at once, a token
   * function's once it returned one); undefined while neither is known.
   */
  get kind(): ClientKind | undefined {
    return this.sessionKind;
  }

  /** Where the connection is now; `open` only between a `welcome` and the end of that session. */
  get state(): ConnectionState {
    return this.connState;
  }

  /** The current session's welcome, while open; its `idleAfterMs` follows later `policy` frames. */
  get welcome(): Welcome | undefined {
    return this.connState === 'open' ? this.welcomeFrame : undefined;
  }

  /** Starts connecting (and reconnecting) until `stop()` or a close code that must not be retried. */
  start(): void {
    if (this.connState !== 'idle' && this.connState !== 'stopped') return;
    this.attempt = 0;
    void this.connect();
  }

  /** Closes the connection for good (code 1000); no reconnect. */
  stop(): void {
    this.finish(undefined);
  }

  /** Drops the current connection and connects again at once (e.g. after a network change). */
  reconnect(): void {
    if (this.connState === 'stopped' || this.connState === 'idle') return;
    this.detach(CLOSE_RECONNECT, 'reconnect');
    this.attempt = 0;
    void this.connect();
  }

  /**
   * The presence to report (PROTOCOL.md section 2, `presence` rows): sent now when open, and again after every
   * reconnect (a new session starts unreported). A `pc` session: `{ state: 'active' }` or `{ state: 'inactive',
   * reason: 'idle' | 'screen_locked' | 'client_locked' }` (claim 4); a `mobile` one: `{ state: 'foreground' }` or
   * `{ state: 'background' }`.
   * @throws ClientError `invalid_presence` for a state or reason section 2 does not have; `presence_not_allowed` for a
   *   state of the other kind than the session's (`kind`: a PC token's client reporting `foreground`, say), which the
   *   server refuses (`frame_not_allowed`) on every reconnect. Either way nothing is sent and the presence set before
   *   stays. While `kind` is not known yet, the state is checked at the next welcome (`presenceRefused`).
   */
  setPresence(presence: PcPresence | { state: MobileState }): void {
    this.presence = presenceFrame(presence, this.sessionKind);
    if (this.connState === 'open') this.sendNow(this.presence);
  }

  /**
   * Read sync (section 4): the user read these messages; the server clears them on the user's other devices.
   * `ids`: message ids, each 1-128 characters (PROTOCOL.md section 3); any number of them: they are sent in
   * frames of at most 500 ids and 64 KiB (section 2: 500 ids of 128 non-ASCII characters would be ~125 KB, a frame
   * the server closes the connection for, 1009), now when open or after the next welcome. An empty list sends nothing.
   * Throws `ClientError` `invalid_read` (naming the first bad id by index) and sends nothing when an id is not a
   * message id the server takes: such a frame would only be refused.
   */
  read(ids: readonly string[]): void {
    checkReadIds(ids);
    for (const chunk of readChunks(ids)) this.enqueue({ type: 'read', ids: chunk });
  }

  /**
   * Sends a client frame of PROTOCOL.md section 2 (`{ type, … }`) when the session is open (at once, or after the
   * next welcome).
   * @throws ClientError, and sends nothing, for a frame the server would refuse for its shape: `invalid_frame` for a
   *   `frame` that is not an object with a section 2 `type` (`undefined`, a string, `{ type: 'typo' }`); a `presence`
   *   frame as `setPresence()` (`invalid_presence`, `presence_not_allowed`; it is sent once, not kept); a `read`
   *   frame with 0 or more than 500 ids or an id that is not 1-128 characters (`invalid_read`; `read()`
   *   splits long lists); any frame over 64 KiB as UTF-8 JSON (`frame_too_large`, no `closeCode`; section 2 closes
   *   the connection for one).
   */
  send(frame: ClientFrameV11): void {
    checkClientFrame(frame, this.sessionKind);
    if (frame.type === 'read') {
      checkReadIds(frame.ids, MAX_READ_IDS);
      if (frame.ids.length === 0) throw new ClientError('invalid_read', 'a read frame carries 1-500 ids (PROTOCOL.md section 2), not 0');
    }
    const text = JSON.stringify(frame);
    // At most 3 UTF-8 bytes per UTF-16 unit: only a long frame needs encoding to be measured.
    if (text.length * 3 > MAX_CLIENT_FRAME_BYTES && utf8Length(text) > MAX_CLIENT_FRAME_BYTES) {
      throw new ClientError('frame_too_large', `a ${frame.type} frame of ${utf8Length(text)} bytes; the server closes the connection (1009) for one over ${MAX_CLIENT_FRAME_BYTES} (PROTOCOL.md section 2); nothing was sent`);
    }
    this.enqueue(frame);
  }

  private enqueue(frame: ClientFrameV11): void {
    if (this.connState === 'open') this.sendNow(frame);
    else this.pending.push(frame);
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.setState('connecting');
    let token: string;
    try {
      token = typeof this.opts.token === 'string' ? this.opts.token : await this.fetchToken(this.opts.token);
    } catch (e) {
      if (generation !== this.generation) return;
      return this.retry(new ClientError('token_failed', `the token provider failed: ${e instanceof Error ? e.message : String(e)}`), 'backoff');
    }
    if (generation !== this.generation || this.connState !== 'connecting') return; // stopped or reconnected meanwhile
    if (typeof token !== 'string' || token === '') {
      // Not sent: the server closes 4401 for it, and a new object every call never equals the refused one, so the
      // client would reconnect forever. The usual cause is `r.json()` where the endpoint answers the bare token.
      const got = token === '' ? 'an empty string' : token == null ? String(token) : typeof token === 'object' ? 'an object' : `a ${typeof token}`;
      return this.retry(new ClientError('token_failed', `the token function gave ${got}, not a token string (a compact JWS; a fetch answer needs r.text(), or the field that holds the token)`), 'backoff');
    }
    this.sessionKind = tokenKind(token) ?? this.sessionKind;
    if (this.refused && this.refused.token === token) {
      const why = this.refused.reason ? ` (${this.refused.reason})` : '';
      return this.finish(new ClientError('unauthenticated', `the token function returned the token the server just refused${why}; not reconnecting: return a new token, then call start()`, 4401, this.refused.reason));
    }
    const ws = new this.WS(this.urls[this.urlIndex % this.urls.length]);
    this.ws = ws;
    this.welcomeTimer = setTimeout(() => {
      if (this.ws !== ws) return;
      this.detach(CLOSE_RECONNECT, 'no welcome');
      this.retry(new ClientError('connection_lost', 'no welcome in time; reconnecting'), 'backoff');
    }, this.opts.welcomeTimeoutMs ?? 10_000);
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', token }));
    ws.onmessage = (ev: { data: unknown }) => {
      if (this.ws === ws && typeof ev.data === 'string') this.onFrame(ev.data);
    };
    ws.onerror = () => {}; // the close event that follows carries what we need
    ws.onclose = (ev: { code: number; reason: string }) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.clearTimers();
      const { error, action } = classifyClose(ev.code, ev.reason);
      if (action === 'new_token' && typeof this.opts.token === 'string') {
        return this.finish(new ClientError(error.code, `${error.message} (pass a token function to get new tokens)`, error.closeCode, error.reason));
      }
      // A token refused as not yet valid may pass later (clock skew); any other refusal is final for that token.
      if (action === 'new_token' && error.reason !== NOT_YET_VALID) this.refused = { token, reason: error.reason };
      this.retry(error, action);
    };
  }

  /** The token function's token, or a rejection once `tokenTimeoutMs` passed without one. */
  private fetchToken(get: () => string | Promise<string>): Promise<string> {
    const ms = this.opts.tokenTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no token within ${ms} ms`)), ms);
    });
    return Promise.race([Promise.resolve().then(get), late]).finally(() => clearTimeout(timer));
  }

  private onFrame(text: string): void {
    let frame: ServerFrameV11;
    try {
      frame = JSON.parse(text) as ServerFrameV11;
    } catch {
      return;
    }
    this.lastHeardAt = Date.now();
    switch (frame.type) {
      case 'welcome':
        return this.onWelcome(frame);
      case 'message':
        // Ack every delivery, also a repeat: the server redelivers what it never saw acked (section 2).
        this.sendNow({ type: 'ack', id: frame.id });
        if (this.seen.add(frame.id)) this.emit('message', frame);
        return;
      case 'clear':
        return this.emit('clear', frame);
      case 'policy':
        if (this.welcomeFrame) this.welcomeFrame = { ...this.welcomeFrame, idleAfterMs: frame.idleAfterMs };
        return this.emit('policy', frame);
      case 'error':
        return this.emit('serverError', frame);
      case 'registered':
        return this.emit('registered', frame);
      case 'unregistered':
        return this.emit('unregistered', frame);
    }
  }

  private onWelcome(welcome: Welcome): void {
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.welcomeFrame = welcome;
    this.sessionKind = welcome.kind;
    this.attempt = 0;
    this.refused = undefined;
    this.setState('open');
    // A presence set before the kind was known may be the other kind's: not sent, forgotten, told.
    const wrongKind = this.presence && presenceKindError(this.presence.state, welcome.kind);
    if (wrongKind) {
      this.presence = undefined;
      this.emit('presenceRefused', wrongKind);
    } else if (this.presence) this.sendNow(this.presence);
    // Reads made offline one id at a time go out merged: a frame each could pass the server's frame rate (4429).
    for (const frame of mergeQueuedReads(this.pending.splice(0))) this.sendNow(frame);
    const every = Math.max(1000, welcome.heartbeatMs);
    this.heartbeatTimer = setInterval(() => {
      // No frame for two intervals (pongs included): the path is dead even if the socket does not know it yet.
      if (Date.now() - this.lastHeardAt > 2 * every + 1000) {
        this.detach(CLOSE_RECONNECT, 'heartbeat timeout');
        return this.retry(new ClientError('connection_lost', 'no answer to pings; reconnecting'), 'backoff');
      }
      this.sendNow({ type: 'ping' });
    }, every);
    this.emit('welcome', welcome);
  }

  private retry(error: ClientError, action: CloseAction): void {
    if (this.connState === 'stopped') return;
    if (action === 'never') return this.finish(error);
    this.urlIndex = (this.urlIndex + 1) % this.urls.length; // another gateway may serve where this one failed
    const random = this.opts.random ?? Math.random;
    const delay = action === 'rate_limited'
      ? rateLimitedDelay(this.opts.backoff, random)
      : action === 'soon' ? backoffDelay(0, this.opts.backoff, random) : backoffDelay(this.attempt++, this.opts.backoff, random);
    this.setState('waiting');
    this.emit('disconnect', { error, retryInMs: delay });
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private finish(error: ClientError | undefined): void {
    if (this.connState === 'stopped') return;
    this.generation++;
    this.detach(CLOSE_NORMAL, 'client stopped');
    this.setState('stopped');
    if (error) this.emit('disconnect', { error });
    this.emit('stopped', error);
  }

  /** Forgets the current socket (its late events are ignored) and closes it. */
  private detach(code: number, reason: string): void {
    this.clearTimers();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        /* already closing */
      }
    }
  }

  private sendNow(frame: ClientFrameV11): void {
    if (this.ws && this.ws.readyState === OPEN) this.ws.send(JSON.stringify(frame));
  }

  private clearTimers(): void {
    clearTimeout(this.retryTimer);
    clearTimeout(this.welcomeTimer);
    clearInterval(this.heartbeatTimer);
    this.retryTimer = this.welcomeTimer = this.heartbeatTimer = undefined;
  }

  private setState(state: ConnectionState): void {
    if (this.connState === state) return;
    this.connState = state;
    this.emit('state', state);
  }
}

// Checks before a frame is kept or sent (section 2), here and not in a module of their own: pages are served a fixed
// list of SDK modules (gateway/static-pages.ts).

/** The frame to keep for `presence`; throws `invalid_presence`, or `presence_not_allowed` when `kind` (if known) may not. */
function presenceFrame(presence: unknown, kind: ClientKind | undefined): PresenceFrameV11 {
  const p = presence as { state?: unknown; reason?: unknown } | null | undefined;
  if (typeof p !== 'object' || p === null || !PRESENCE_STATES.has(p.state as string)) {
    throw new ClientError('invalid_presence', `presence.state must be one of ${[...PRESENCE_STATES].join(', ')} (PROTOCOL.md section 2), not ${JSON.stringify(p?.state) ?? 'undefined'}`);
  }
  if (p.state === 'inactive' && !INACTIVE_REASONS.has(p.reason as string)) {
    throw new ClientError('invalid_presence', `an inactive presence.reason must be one of ${[...INACTIVE_REASONS].join(', ')} (PROTOCOL.md section 2), not ${JSON.stringify(p.reason) ?? 'undefined'}`);
  }
  const refused = kind && presenceKindError(p.state as string, kind);
  if (refused) throw refused;
  const { type: _type, ...rest } = p as { type?: unknown };
  return { ...rest, type: 'presence' } as PresenceFrameV11;
}

/** `presence_not_allowed` when a `kind` session may not report `state` (section 2, "who"), else undefined. */
function presenceKindError(state: string, kind: ClientKind): ClientError | undefined {
  const allowed = PRESENCE_STATES_BY_KIND[kind];
  if (allowed === undefined || allowed.has(state)) return undefined; // a kind this library does not know: the server decides
  return new ClientError('presence_not_allowed', `a ${kind} session cannot report presence.state ${JSON.stringify(state)}: a ${kind} reports ${[...allowed].join(' or ')} (PROTOCOL.md section 2)`);
}

/** Throws `invalid_frame` for a `send()` argument that is not an object with a section 2 `type`; a presence as above. */
function checkClientFrame(frame: unknown, kind: ClientKind | undefined): asserts frame is ClientFrameV11 {
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
    const got = frame === null ? 'null' : Array.isArray(frame) ? 'an array' : typeof frame === 'undefined' ? 'undefined' : `a ${typeof frame}`;
    throw new ClientError('invalid_frame', `send(frame): frame must be a client frame object with a type (PROTOCOL.md section 2), not ${got}; nothing was sent`);
  }
  const type = (frame as { type?: unknown }).type;
  if (typeof type !== 'string' || !CLIENT_FRAME_TYPES.has(type)) {
    throw new ClientError('invalid_frame', `send(frame): frame.type must be one of ${[...CLIENT_FRAME_TYPES].join(', ')} (PROTOCOL.md section 2), not ${JSON.stringify(type) ?? 'undefined'}; nothing was sent`);
  }
  if (type === 'presence') presenceFrame(frame, kind);
}

/**
 * The `kind` claim of a client token (a JWS, section 2), unverified (the server verifies it): the session's kind before
 * any welcome. Undefined for anything that is no such token, and where the platform has no `atob`.
 */
function tokenKind(token: string): ClientKind | undefined {
  const payload = token.split('.')[1];
  const atob = (globalThis as { atob?: (s: string) => string }).atob;
  if (!payload || typeof atob !== 'function') return undefined;
  try {
    const kind = (JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { kind?: unknown } | null)?.kind;
    return kind === 'pc' || kind === 'mobile' ? kind : undefined;
  } catch {
    return undefined;
  }
}
