import { SwitchboardError } from './errors.js';
import { invalid, isId, isObject } from './fields.js';
import { decodeSendRequest, type ChatMessage } from './message.js';
import { fail, ok, type Decoded } from './result.js';

/** `POST /v1/messages/batch` and `switchboard.send.batch` (PROTOCOL.md section 3): 1-500 messages per request. */
export const MAX_BATCH_MESSAGES = 500;
/** Largest batch body: 500 messages of ~16 KiB each. A single message stays limited to MAX_MESSAGE_BYTES. */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;

/** One message of a batch: decoded, or refused with the id it carried (when it had a usable one). */
export type BatchItem = { ok: true; msg: ChatMessage } | { ok: false; id?: string; error: SwitchboardError };

/** One entry of `{"results":[…]}`, in request order. */
export type BatchResult = { id: string; status: 'accepted' | 'duplicate' } | { id?: string; error: { code: string; message: string } };

/**
 * Validates `{"messages":[…]}`. The request as a whole fails (400 `invalid_request`) only when it is not that shape
 * or holds 0 or more than 500 entries; each message is validated on its own and a bad one fails alone.
 */
export function decodeBatchRequest(body: unknown, acceptedAt: number): Decoded<BatchItem[]> {
  if (!isObject(body) || !Array.isArray(body.messages)) return fail(invalid('messages', `an array of 1-${MAX_BATCH_MESSAGES} message objects`));
  const list = body.messages as unknown[];
  if (list.length === 0 || list.length > MAX_BATCH_MESSAGES) return fail(invalid('messages', `an array of 1-${MAX_BATCH_MESSAGES} message objects, got ${list.length}`));
  return ok(list.map((m): BatchItem => {
    const d = decodeSendRequest(m, acceptedAt);
    if (d.ok) return { ok: true, msg: d.value };
    const id = isObject(m) && isId(m.id) ? m.id : undefined;
    return id === undefined ? { ok: false, error: d.error } : { ok: false, id, error: d.error };
  }));
}
