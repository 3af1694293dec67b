import { SwitchboardError } from './errors.js';
import { invalid, isMessageId, isObject, MAX_ID_CHARS, messageId, oneOf, str, type Json } from './fields.js';
import { asProtocolError, readRegistration, type MobileOs } from './message.js';
import { fail, ok, type Decoded } from './result.js';

/** WebSocket frames, PROTOCOL.md section 2. Text frames, one JSON object each. */

export const MAX_FRAME_BYTES = 64 * 1024;
export const HELLO_TIMEOUT_MS = 5000;
/** Longest hello token taken (characters); a longer one is refused 4401 with that reason. */
export const MAX_HELLO_TOKEN_CHARS = 8192;

export type ClientKind = 'pc' | 'mobile';
export type InactiveReason = 'idle' | 'screen_locked' | 'client_locked';
export const INACTIVE_REASONS = ['idle', 'screen_locked', 'client_locked'] as const;

export type PcPresence = { state: 'active' } | { state: 'inactive'; reason: InactiveReason };
export type MobilePresence = { state: 'foreground' | 'background' };

export type ClientFrame =
  | { type: 'hello'; token: string }
  | ({ type: 'presence' } & (PcPresence | MobilePresence))
  | { type: 'register'; os: MobileOs; token: string; app?: string }
  | { type: 'ack'; id: string }
  | { type: 'read'; ids: string[] }
  | { type: 'ping' }
  | { type: 'unregister' };

export type ClientFrameType = ClientFrame['type'];

/** Frames each kind of client may send after hello (section 2's "who" column). */
export const FRAMES_BY_KIND: Readonly<Record<ClientKind, ReadonlySet<string>>> = {
  pc: new Set(['presence', 'ack', 'read', 'ping']),
  mobile: new Set(['presence', 'register', 'ack', 'read', 'ping', 'unregister']),
};

export interface MessageFrame {
  type: 'message';
  id: string;
  from?: string;
  title?: string;
  text?: string;
  data?: Readonly<Record<string, string>>;
  ts: number;
}

export type ServerFrame =
  /** `idleAfterMs`: the idle threshold the user's policy asks PC clients to apply (section 2, default 60000). */
  | { type: 'welcome'; user: string; device: string; kind: ClientKind; heartbeatMs: number; idleAfterMs: number }
  | MessageFrame
  | { type: 'error'; code: string; message: string }
  | ClearFrame
  | PolicyFrame
  | { type: 'pong' }
  | { type: 'registered' }
  | { type: 'unregistered' };

/** Section 2: these messages were read elsewhere; remove their notifications. `badge` = the user's unread count. */
export interface ClearFrame {
  type: 'clear';
  ids: string[];
  badge: number;
}

/**
 * The user's policy changed while this PC session was open (`PUT /v1/users/{u}/policy`): apply `idleAfterMs` now,
 * as if a new `welcome` had carried it. An addition where section 2 is silent; older clients ignore unknown types.
 */
export interface PolicyFrame {
  type: 'policy';
  idleAfterMs: number;
}

/** Section 2 `read` frame and `POST /v1/users/{u}/read`: 1-500 message ids. */
export const MAX_READ_IDS = 500;

/** Identity a frame may name; naming anyone else is a 4403 (section 2, close codes). */
export interface FrameIdentity {
  user: string;
  device: string;
}

/**
 * Parses and validates one text frame. `identity` is the authenticated session (absent before hello);
 * a frame whose `user` or `device` field names someone else fails with `forbidden`.
 */
export function decodeClientFrame(text: string, identity?: FrameIdentity): Decoded<ClientFrame> {
  const ack = plainAckId(text);
  if (ack !== undefined) return ok({ type: 'ack', id: ack });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail(new SwitchboardError('bad_json', 'frame is not valid JSON', { whole: true }));
  }
  try {
    if (!isObject(parsed)) throw invalid('frame', 'a JSON object');
    if (identity && ((parsed.user !== undefined && parsed.user !== identity.user) ||
        (parsed.device !== undefined && parsed.device !== identity.device))) {
      throw new SwitchboardError('forbidden');
    }
    switch (parsed.type) {
      case 'hello':
        return ok({ type: 'hello', token: str(parsed, 'token', MAX_HELLO_TOKEN_CHARS) });
      case 'presence': {
        const state = oneOf(parsed, 'state', ['active', 'inactive', 'foreground', 'background'] as const);
        if (state === 'inactive') return ok({ type: 'presence', state, reason: oneOf(parsed, 'reason', INACTIVE_REASONS) });
        return ok({ type: 'presence', state });
      }
      case 'register':
        return ok({ type: 'register', ...readRegistration(parsed) });
      case 'ack':
        return ok({ type: 'ack', id: messageId(parsed, 'id') });
      case 'read':
        return ok({ type: 'read', ids: readIds(parsed) });
      case 'ping':
        return ok({ type: 'ping' });
      case 'unregister':
        return ok({ type: 'unregister' });
      default:
        if (typeof parsed.type !== 'string') throw invalid('type', 'a string');
        throw new SwitchboardError('unknown_frame', JSON.stringify(parsed.type.slice(0, 64)));
    }
  } catch (e) {
    return fail(asProtocolError(e));
  }
}

const ACK_HEAD = '{"type":"ack","id":"';
const ACK_TAIL = '"}';

/**
 * The id of an ack frame written exactly as `JSON.stringify({ type: 'ack', id })` writes it (the client library
 * and most clients), when the id is 1-MAX_ID_CHARS printable ASCII characters other than `"` and `\`, so the
 * text between the quotes is the id itself; otherwise undefined and the frame takes the general path. Every
 * delivered message brings one ack: JSON.parse and the checks of the general path were ~4% of the node's CPU in
 * issue 13's in-process benchmark. An ack names no user or device, so no identity check is skipped; the answer is the
 * general path's (test/protocol-fast-paths.test.ts compares both on random frames).
 */
function plainAckId(text: string): string | undefined {
  const end = text.length - ACK_TAIL.length;
  if (end <= ACK_HEAD.length || end - ACK_HEAD.length > MAX_ID_CHARS || !text.startsWith(ACK_HEAD) || !text.endsWith(ACK_TAIL)) return undefined;
  for (let i = ACK_HEAD.length; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return undefined;
  }
  return text.slice(ACK_HEAD.length, end);
}

/** The `ids` of a read frame or body: 1-500 message ids, duplicates removed (section 2, read row). */
export function readIds(body: Json): string[] {
  const v = body.ids;
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_READ_IDS) throw invalid('ids', `an array of 1-${MAX_READ_IDS} message ids`);
  // Checked in place; only a bad entry builds the object that names it in the error.
  for (let i = 0; i < v.length; i++) if (!isMessageId(v[i])) messageId({ [`ids[${i}]`]: v[i] }, `ids[${i}]`);
  return [...new Set(v as string[])];
}

/** WebSocket close codes, section 2. */
export const CLOSE = {
  tooLarge: 1009,
  protocolViolation: 4400,
  unauthenticated: 4401,
  forbidden: 4403,
  helloTimeout: 4408,
  replaced: 4409,
  rateLimited: 4429,
  goingAway: 1001,
} as const;
