import { backoffDelay, rateLimitedDelay, type BackoffOptions } from './backoff.js';
import { ClientError, classifyClose, type CloseAction } from './close-codes.js';
import { Emitter } from './emitter.js';
import { checkReadIds, mergeQueuedReads, readChunks, utf8Length } from './read-frames.js';
import { RecentIds } from './recent-ids.js';
import { INACTIVE_REASONS, MAX_CLIENT_FRAME_BYTES, MAX_READ_IDS, PRESENCE_STATES, type ClearFrame, type ClientFrameV11, type ErrorFrame, type MessageFrame, type MobileState, type PcPresence, type PolicyFrame, type ServerFrameV11, type Welcome } from './wire.js';

/**
 * The client core (PROTOCOL.md section 2) for browsers, Electron, Node and React Native: hello with a token,
 * reconnect with jittered backoff, ping every `welcome.heartbeatMs`, presence sent again after every reconnect,
 * every message acked, ids deduplicated across reconnects, `clear` and `policy` frames, and close codes turned into errors.
 * It uses only what a browser has; Node 20 has no global WebSocket, so pass `WebSocket` from the `ws` package there.
 */

// What an app handles through this entry point (`switchboard/client`): errors and the frames its events carry.
export { ClientError, type ClientErrorCode, type CloseAction } from './close-codes.js';
export { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export type { ClearFrame, ClientFrameV11, ErrorFrame, InactiveReason, MessageFrame, MobileOs, MobileState, PcPresence, PolicyFrame, ServerFrameV11, Welcome } from './wire.js';

/** The part of the WHATWG WebSocket this client uses; the browser's, React Native's and `ws`'s all fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  // Handlers take `any` so that `ws`'s WebSocket, whose event classes are its own, fits as well as the browser's.
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** A token, or a function called before every connect (and again after a 4401) that returns a fresh one. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /**
   * `ws://host:port/v1/ws` or `wss://…`; or several (the gateways of a cluster, when no load balancer is in front of
   * them): each connection tries the next after one that failed or was lost, and stays with one that opened.
   */
  url: string | readonly string[];
  /** The HS256 client token of section 2. A function lets the client recover from 4401 (expired token). */
  token: TokenSource;
  /** WebSocket constructor; default `globalThis.WebSocket` (absent in Node 20: pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays; see `BackoffOptions` for defaults. */
  backoff?: BackoffOptions;
  /** How many recent message ids are remembered for dedupe. Default 10000. */
  dedupeSize?: number;
  /** A connection that gets no `welcome` within this many ms is dropped and retried. Default 10000. */
  welcomeTimeoutMs?: number;
  /**
   * A token function that gives no token within this many ms counts as failed (`token_failed`, retried with backoff):
   * a `fetch` to an auth server that never answers would otherwise leave the client `connecting` for good. Default 10000.
   */
  tokenTimeoutMs?: number;
  /** Source of jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'stopped';

/** A connection ended. `retryInMs` is when the next attempt starts; absent when the client stopped for good. */
export interface Disconnect {
  error: ClientError;
  retryInMs?: number;
}

export interface ClientEvents {
  /** A session opened (after every reconnect too). */
  welcome: (welcome: Welcome) => void;
  /** A message not seen before (already acked). */
  message: (message: MessageFrame) => void;
  /** These messages were read elsewhere: remove their notifications (section 4, read sync). */
  clear: (clear: ClearFrame) => void;
  /** PC sessions: the user's policy changed; apply the new idle threshold (`welcome.idleAfterMs` is updated too). */
  policy: (policy: PolicyFrame) => void;
  /** The server refused a frame; the connection stays. */
  serverError: (error: ErrorFrame) => void;
  /** A connection ended or could not be made (a refused token too); `retryInMs` says when the next attempt starts. */
  disconnect: (disconnect: Disconnect) => void;
  /** The client stopped for good: `stop()` was called (no error), or a close code that must not be retried. */
  stopped: (error: ClientError | undefined) => void;
  /** The connection state changed: `connecting` (token, socket, hello), `open` (welcomed), `waiting` (backing off), `stopped`. */
  state: (state: ConnectionState) => void;
  /** Mobile: the server stored the push token of a `register` frame (`MobileSession` matches it to its frame). */
  registered: (frame: { type: 'registered' }) => void;
  /** Mobile: the server forgot this device's push token (`unregister`, log-out). */
  unregistered: (frame: { type: 'unregistered' }) => void;
}

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
  private presence?: { type: 'presence' } & (PcPresence | { state: MobileState });
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
   * The presence to report: sent now when open, and again after every reconnect (a new session starts
   * unreported). PC: `active` / `inactive` with a reason (claim 4); mobile: `foreground` / `background`.
   * Throws `ClientError` `invalid_presence` for a state or reason section 2 does not have (the server would refuse it
   * on every reconnect); the presence reported before stays.
   */
  setPresence(presence: PcPresence | { state: MobileState }): void {
    const p = presence as { state?: unknown; reason?: unknown } | null | undefined;
    if (typeof p !== 'object' || p === null || !PRESENCE_STATES.has(p.state as string)) {
      throw new ClientError('invalid_presence', `presence.state must be one of ${[...PRESENCE_STATES].join(', ')} (PROTOCOL.md section 2), not ${JSON.stringify(p?.state) ?? 'undefined'}`);
    }
    if (p.state === 'inactive' && !INACTIVE_REASONS.has(p.reason as string)) {
      throw new ClientError('invalid_presence', `an inactive presence.reason must be one of ${[...INACTIVE_REASONS].join(', ')} (PROTOCOL.md section 2), not ${JSON.stringify(p.reason) ?? 'undefined'}`);
    }
    this.presence = { type: 'presence', ...presence } as typeof this.presence;
    if (this.connState === 'open') this.sendNow(this.presence!);
  }

  /**
   * Read sync (section 4): the user read these messages; the server clears them on the user's other devices.
   * `ids`: message ids, each 1-128 printable characters (PROTOCOL.md section 3); any number of them: they are sent in
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
   * Sends a frame when the session is open (at once, or after the next welcome). Throws `ClientError` and sends
   * nothing for a frame the server would refuse for its shape: a `read` frame with 0 or more than 500 ids or an id
   * that is not 1-128 printable characters (`invalid_read`; `read()` splits long lists), or any frame over 64 KiB as
   * UTF-8 JSON (`frame_too_large`, no `closeCode`; PROTOCOL.md section 2 closes the connection for one).
   */
  send(frame: ClientFrameV11): void {
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
    this.attempt = 0;
    this.refused = undefined;
    this.setState('open');
    if (this.presence) this.sendNow(this.presence);
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
