import type { ErrorCode } from '../protocol/errors.js';

/**
 * An error answered by Switchboard (PROTOCOL.md section 3, `{"error":{"code","message"}}`), or a transport failure.
 * `code` is from the server's error registry (README "Error codes"); a newer server may answer codes this version
 * does not list (v1.1 adds e.g. `invalid_field`, `payload_too_large`), so it is typed open-ended.
 */
export type ApiErrorCode = ErrorCode | 'invalid_field' | 'payload_too_large' | 'transport' | (string & {});

export class SwitchboardApiError extends Error {
  override readonly name = 'SwitchboardApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    /** HTTP status; absent over NATS and for transport failures. */
    readonly status: number | undefined,
    /** The same call may succeed later: the SDK retries these itself (with the same message id). */
    readonly temporary: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Codes the server's registry marks temporary (`temporary: true`): 503s, 504 `outcome_unknown`, 500 `internal`, 429. */
const TEMPORARY = new Set<string>(['rate_limited', 'unavailable', 'shutting_down', 'store_failed', 'outcome_unknown', 'internal', 'transport']);

/** Builds the error for an answer body `{"error":{code,message}}` (or anything else) with its HTTP status. */
export function errorFromAnswer(body: unknown, status?: number): SwitchboardApiError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof e?.code === 'string' ? e.code : status !== undefined && status >= 500 ? 'unavailable' : 'invalid_request';
  const message = typeof e?.message === 'string' ? e.message : `unexpected answer${status !== undefined ? ` (HTTP ${status})` : ''}`;
  const temporary = TEMPORARY.has(code) || (status !== undefined && (status >= 500 || status === 429));
  return new SwitchboardApiError(code, message, status, temporary);
}
