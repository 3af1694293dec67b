import type { BackoffOptions } from './backoff.js';
import type { ClientError } from './close-codes.js';
import type { ClearFrame, ErrorFrame, MessageFrame, PolicyFrame, Welcome } from './wire.js';

/** The shapes `SwitchboardClient` takes and emits (re-exported by `switchboard/client`). */

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
  /**
   * A presence set while the session's kind was not known yet (a token function, before the first welcome) is of the
   * other kind than `welcome.kind`: `error.code` `presence_not_allowed`. It was not sent and is forgotten; set one of
   * this kind.
   */
  presenceRefused: (error: ClientError) => void;
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
