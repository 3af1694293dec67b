/**
 * What each WebSocket close code means to a client and what it does next (PROTOCOL.md section 2, close codes).
 * `reconnect`: `backoff` (jittered, growing), `soon` (a short jittered wait: the node is going away),
 * `rate_limited` (a long wait), `new_token` (ask the token provider again, then reconnect), `never`.
 */
export type CloseAction = 'backoff' | 'soon' | 'rate_limited' | 'new_token' | 'never';

/** Stable names of the ways a connection ends, for `ClientError.code`. */
export type ClientErrorCode =
  | 'unauthenticated'
  | 'replaced'
  | 'rate_limited'
  | 'protocol_violation'
  | 'forbidden'
  | 'hello_timeout'
  | 'frame_too_large'
  | 'slow_consumer'
  | 'going_away'
  | 'connection_lost'
  | 'token_failed'
  | 'register_refused'
  | 'unregister_refused'
  /** Thrown by `read()` / `send()` before anything is sent: ids the contract refuses (PROTOCOL.md sections 2 and 3). */
  | 'invalid_read'
  /** Thrown by `setPresence()` / `send()`: a state or reason section 2 does not have; nothing is sent or kept. */
  | 'invalid_presence'
  /**
   * Thrown by `setPresence()` / `send()`: a state of the other kind than the session's (`foreground` from a `pc`
   * session, `active` from a `mobile` one), which the server answers `frame_not_allowed`; nothing is sent or kept.
   * Also the `presenceRefused` event's, for a presence set before the kind was known.
   */
  | 'presence_not_allowed'
  /** Thrown by `send()`: an argument that is no client frame (not an object, or a `type` section 2 does not have). */
  | 'invalid_frame'
  /**
   * Thrown (or rejected) for an argument of the wrong type or range, the message naming it:
   * `MobileSession.logOut(timeoutMs)` (a number of ms, 0 to 2147483647), `PcPresenceReporter.setClientLocked(locked)`
   * (a boolean). Nothing is done.
   */
  | 'invalid_argument'
  /** Thrown by the `SwitchboardClient` constructor: no `url`, or a `token` that is neither a string nor a function. */
  | 'invalid_options';

interface CloseSpec {
  code: ClientErrorCode;
  action: CloseAction;
  advice: string;
}

const BY_CLOSE_CODE: Readonly<Record<number, CloseSpec>> = {
  4401: { code: 'unauthenticated', action: 'new_token', advice: 'the token was refused; get a new token' },
  4409: { code: 'replaced', action: 'never', advice: 'another connection of the same user and device replaced this one; not reconnecting' },
  4429: { code: 'rate_limited', action: 'rate_limited', advice: 'too many frames; backing off before reconnecting' },
  4400: { code: 'protocol_violation', action: 'never', advice: 'the server saw a protocol violation (a client bug); not reconnecting' },
  4403: { code: 'forbidden', action: 'never', advice: 'a frame named another user or device (a client bug); not reconnecting' },
  4408: { code: 'hello_timeout', action: 'backoff', advice: 'no hello within 5 s; reconnecting' },
  1009: { code: 'frame_too_large', action: 'backoff', advice: 'a frame exceeded 64 KiB; reconnecting' },
  1013: { code: 'slow_consumer', action: 'backoff', advice: 'the client did not read fast enough; reconnecting' },
  1001: { code: 'going_away', action: 'soon', advice: 'the node is shutting down; reconnecting' },
};

/**
 * A bad argument as an `invalid_argument` message shows it: `NaN`, `-1`, `"false"`, `null`, `undefined`, `an object`,
 * `a function` (never an object's contents: it may hold a token).
 */
export function shownValue(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? 'an object' : typeof v === 'function' ? 'a function' : String(v);
}

/**
 * An ended connection or failed operation, with the server's close code and reason when there was one. Also thrown
 * synchronously by `SwitchboardClient.read()` / `send()` / `setPresence()` for a frame the server would refuse for its
 * shape (`invalid_read`, `invalid_presence`, `presence_not_allowed`, `invalid_frame`, or `frame_too_large` without a
 * `closeCode`): such a frame is never sent; by the constructor for options it cannot use (`invalid_options`); and by
 * `MobileSession.logOut()` / `PcPresenceReporter.setClientLocked()` for an argument of the wrong type or range
 * (`invalid_argument`).
 */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** The WebSocket close code, when the connection closed. */
    readonly closeCode?: number,
    /** The server's close reason, e.g. `expired`, `bad signature` (section 2); never a secret. */
    readonly reason?: string,
  ) {
    super(message);
  }
}

/** Classifies a close: what happened, what the client does next. Unknown codes (1006 etc.) back off and retry. */
export function classifyClose(closeCode: number, reason: string): { error: ClientError; action: CloseAction } {
  const spec = BY_CLOSE_CODE[closeCode] ?? { code: 'connection_lost', action: 'backoff', advice: 'connection lost; reconnecting' };
  const why = reason ? ` (${reason})` : '';
  return { error: new ClientError(spec.code, `closed ${closeCode}${why}: ${spec.advice}`, closeCode, reason || undefined), action: spec.action };
}
