/**
 * Every error code Switchboard answers with, in one registry (PROTOCOL.md sections 2 and 3).
 * A code is stable once published; `test/errors.test.ts` checks that each one is documented in README.md.
 */
export interface ErrorSpec {
  /** HTTP status when the error is answered over HTTP. */
  readonly status: number;
  /** Human sentence; details are appended by the caller. */
  readonly message: string;
  /** True when the same request may succeed later (retry with backoff). */
  readonly temporary: boolean;
}

export const ERRORS = {
  bad_json: { status: 400, message: 'body is not valid JSON', temporary: false },
  invalid_request: { status: 400, message: 'request does not match the contract', temporary: false },
  invalid_field: { status: 400, message: 'a field has a value that is not allowed', temporary: false },
  unknown_frame: { status: 400, message: 'unknown frame type', temporary: false },
  frame_not_allowed: { status: 403, message: 'frame type not allowed for this kind of client', temporary: false },
  protocol_violation: { status: 400, message: 'protocol violation', temporary: false },
  unauthorized: { status: 401, message: 'missing or invalid credentials', temporary: false },
  forbidden: { status: 403, message: 'the frame claims another user or device', temporary: false },
  loopback_only: { status: 403, message: 'only a client on this machine may call this', temporary: false },
  not_found: { status: 404, message: 'no such resource', temporary: false },
  method_not_allowed: { status: 405, message: 'method not allowed', temporary: false },
  body_too_large: { status: 413, message: 'body exceeds the size limit', temporary: false },
  frame_too_large: { status: 413, message: 'frame exceeds 64 KiB', temporary: false },
  payload_too_large: { status: 413, message: 'push payload would exceed 4096 bytes even without text', temporary: false },
  unsupported_media_type: { status: 415, message: 'body must be JSON (application/json)', temporary: false },
  rate_limited: { status: 429, message: 'too many frames', temporary: true },
  // Also the answer of a query whose owner did not answer in time (a failover under way): not about messages alone.
  unavailable: { status: 503, message: 'temporarily unavailable', temporary: true },
  shutting_down: { status: 503, message: 'node is shutting down', temporary: true },
  store_failed: { status: 503, message: 'durable store write failed', temporary: true },
  // Not a 503: section 3 says a 503'd message "is never delivered", and this one may be (the cluster's JetStream gave
  // no answer in time, so it may have stored it). Sent again with the same id it is answered 202 or 200 duplicate.
  outcome_unknown: { status: 504, message: 'no answer from the durable store in time: the message may have been accepted; send it again with the same id', temporary: true },
  internal: { status: 500, message: 'internal error', temporary: true },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code; the only kind of error that crosses the edge. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly temporary: boolean;

  /**
   * The message is the code's registry message, then `: detail` when one is given; with `whole: true` the detail
   * is the whole message instead (e.g. "frame is not valid JSON", not "body is not valid JSON: frame is …").
   */
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown; whole?: boolean }) {
    const spec = ERRORS[code];
    super(detail ? (options?.whole ? detail : `${spec.message}: ${detail}`) : spec.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SwitchboardError';
    this.code = code;
    this.status = spec.status;
    this.temporary = spec.temporary;
  }

  /** The wire form used in HTTP bodies, NATS replies and WebSocket error frames. */
  toBody(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/**
 * What a failed store call (an accept, a registry or policy write) is answered with: its own `SwitchboardError`
 * (e.g. `shutting_down`, `unavailable`), anything else as 503 `store_failed` with the cause kept for the log.
 */
export function asStoreFailure(e: unknown): SwitchboardError {
  return e instanceof SwitchboardError ? e : new SwitchboardError('store_failed', undefined, { cause: e });
}
