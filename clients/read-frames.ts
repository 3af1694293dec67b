import { ClientError } from './close-codes.js';
import { MAX_CLIENT_FRAME_BYTES, MAX_MESSAGE_ID_CHARS, MAX_READ_IDS, type ClientFrameV11 } from './wire.js';

/**
 * What a `read` frame may carry, checked before it is sent: the server refuses a frame of another shape with an error
 * frame (`invalid_request`), or closes the connection for one over 64 KiB (1009), and that refusal could be taken for
 * the answer to a frame sent near it. Rules: PROTOCOL.md section 2 (`read` row: 1-500 ids; frames over 64 KiB close
 * the connection) and section 3 (a message id is 1-128 characters, any of them, in a well-formed string).
 */

/**
 * No lone surrogate: such a string has no UTF-8, so no frame can carry it. A loop rather than ES2024's
 * `String.prototype.isWellFormed`, which browsers before Chrome 111, Safari 16.4 and Firefox 119 lack.
 */
function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false; // a low surrogate with no high one before it
    const next = s.charCodeAt(i + 1); // NaN past the end
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/** Why `id` is not a message id the server takes, or undefined when it is one. */
export function messageIdProblem(id: unknown): string | undefined {
  if (typeof id !== 'string') return `is a ${id === null ? 'null' : typeof id}, not a string`;
  if (id.length === 0) return 'is empty';
  // Code points, not UTF-16 units: the server counts characters as `for…of` does.
  let chars = 0;
  for (const _ of id) if (++chars > MAX_MESSAGE_ID_CHARS) return `is longer than ${MAX_MESSAGE_ID_CHARS} characters`;
  if (!wellFormed(id)) return 'holds a lone surrogate (not UTF-8)';
  return undefined;
}

/**
 * Throws `ClientError('invalid_read')` naming the first id the contract refuses (by its index, never its text, which
 * may be long) and why; `maxIds` bounds the count (a single frame: MAX_READ_IDS; `read()` splits, so no bound).
 */
export function checkReadIds(ids: unknown, maxIds = Infinity): asserts ids is readonly string[] {
  if (!Array.isArray(ids)) throw new ClientError('invalid_read', 'read ids must be an array of message ids');
  if (ids.length > maxIds) throw new ClientError('invalid_read', `a read frame carries at most ${maxIds} ids, not ${ids.length} (PROTOCOL.md section 2); read() splits longer lists`);
  for (let i = 0; i < ids.length; i++) {
    const problem = messageIdProblem(ids[i]);
    if (problem !== undefined) {
      throw new ClientError('invalid_read', `read ids[${i}] ${problem}: a message id is 1-${MAX_MESSAGE_ID_CHARS} characters (PROTOCOL.md section 3); nothing was sent`);
    }
  }
}

/** `{"type":"read","ids":[]}` and room to spare: what a read frame costs besides its ids, bytes. */
const READ_FRAME_OVERHEAD = 64;

/**
 * Ids cut into runs that each fit one `read` frame: at most MAX_READ_IDS, and at most MAX_CLIENT_FRAME_BYTES as JSON.
 * The ids must have passed `checkReadIds` (one id is then at most ~0.5 KB, so every run fits).
 */
export function readChunks(ids: readonly string[]): string[][] {
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let bytes = READ_FRAME_OVERHEAD;
  for (const id of ids) {
    const size = utf8Length(JSON.stringify(id)) + 1; // the quoted, escaped id and its comma
    if (chunk.length > 0 && (chunk.length === MAX_READ_IDS || bytes + size > MAX_CLIENT_FRAME_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = READ_FRAME_OVERHEAD;
    }
    chunk.push(id);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Frames queued while offline, with each run of `read` frames merged into as few frames as `readChunks` allows; the
 * other frames keep their places. An app that marks messages read one `read([id])` at a time while offline would
 * otherwise send one frame per id at the next welcome, and the server closes a client that sends more than
 * `SWITCHBOARD_FRAME_RATE` (default 200 a second, bursts of 400) with 4429, dropping the reads past it.
 */
export function mergeQueuedReads(frames: readonly ClientFrameV11[]): ClientFrameV11[] {
  const out: ClientFrameV11[] = [];
  let ids: string[] = [];
  const flush = () => {
    for (const chunk of readChunks(ids)) out.push({ type: 'read', ids: chunk });
    ids = [];
  };
  for (const frame of frames) {
    if (frame.type === 'read') {
      ids.push(...frame.ids);
      continue;
    }
    flush();
    out.push(frame);
  }
  flush();
  return out;
}

const utf8 = new TextEncoder();

/** UTF-8 bytes of `s` (TextEncoder: in every browser and in Node). */
export function utf8Length(s: string): number {
  return utf8.encode(s).length;
}
