import { SwitchboardError } from './errors.js';
import { invalid, isMessageId, isObject } from './fields.js';
import { decodeSendRequest, MAX_MESSAGE_BYTES, type ChatMessage } from './message.js';
import { fail, ok, type Decoded } from './result.js';

/** `POST /v1/messages/batch` and `switchboard.send.batch` (PROTOCOL.md section 3): 1-500 messages per request. */
export const MAX_BATCH_MESSAGES = 500;
/**
 * Largest batch body: 500 messages of ~16 KiB each. Each message stays limited to MAX_MESSAGE_BYTES as JSON, as a
 * single send's body is (`oversizeBatchMessage`).
 */
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
    if (d.ok) {
      const tooLarge = oversizeBatchMessage(d.value);
      return tooLarge === undefined ? { ok: true, msg: d.value } : { ok: false, id: d.value.id, error: tooLarge };
    }
    const id = isObject(m) && isMessageId(m.id) ? m.id : undefined;
    return id === undefined ? { ok: false, error: d.error } : { ok: false, id, error: d.error };
  }));
}

/**
 * A batch's message over MAX_MESSAGE_BYTES (64 KiB) as JSON: 413 `body_too_large`, the answer the same message gets
 * as a single send's body (`decodeSendBytes`), so a batch is no way around that limit. Measured on the decoded
 * message, what is stored and delivered (fields the contract does not know are dropped; a MessagePack int64 among them
 * would be a BigInt, which JSON cannot take). Only `text` and `collapseKey` can make a valid message that large
 * (`decodeSendRequest` already refused one whose title, sender or data cannot fit a 4096-byte push payload), so the
 * message is serialized only when those two, at 6 bytes a UTF-16 unit (`\u001f`), could pass 32 KiB; undefined when
 * it fits. A single send's limit is on its body as sent (JSON or MessagePack), so the two can differ at the edge.
 */
function oversizeBatchMessage(msg: ChatMessage): SwitchboardError | undefined {
  const units = (msg.text?.length ?? 0) + (msg.collapseKey?.length ?? 0);
  if (units * 6 <= MAX_MESSAGE_BYTES / 2) return undefined;
  // The fields as the chat server sent them: not the `acceptedAt` stamped here (JSON.stringify leaves out undefined).
  const bytes = Buffer.byteLength(JSON.stringify({ ...msg, acceptedAt: undefined }));
  if (bytes <= MAX_MESSAGE_BYTES) return undefined;
  return new SwitchboardError('body_too_large', `message of ${bytes} bytes as JSON; the limit is ${MAX_MESSAGE_BYTES}, as for a single send`);
}
