import { SwitchboardError } from './errors.js';
import { id, invalid, isObject, oneOf, str } from './fields.js';
import { asProtocolError, readRegistration, type MobileOs } from './message.js';
import { fail, ok, type Decoded } from './result.js';

/** WebSocket frames, PROTOCOL.md section 2. Text frames, one JSON object each. */

export const MAX_FRAME_BYTES = 64 * 1024;
export const HELLO_TIMEOUT_MS = 5000;

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
  | { type: 'ping' }
  | { type: 'unregister' };

export type ClientFrameType = ClientFrame['type'];

/** Frames each kind of client may send after hello (section 2's "who" column). */
export const FRAMES_BY_KIND: Readonly<Record<ClientKind, ReadonlySet<string>>> = {
  pc: new Set(['presence', 'ack', 'ping']),
  mobile: new Set(['presence', 'register', 'ack', 'ping', 'unregister']),
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
  | { type: 'pong' }
  | { type: 'registered' }
  | { type: 'unregistered' };

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
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return fail(new SwitchboardError('bad_json', 'frame is not valid JSON'));
  }
  try {
    if (!isObject(parsed)) throw invalid('frame', 'a JSON object');
    if (identity && ((parsed.user !== undefined && parsed.user !== identity.user) ||
        (parsed.device !== undefined && parsed.device !== identity.device))) {
      throw new SwitchboardError('forbidden');
    }
    switch (parsed.type) {
      case 'hello':
        return ok({ type: 'hello', token: str(parsed, 'token', 8192) });
      case 'presence': {
        const state = oneOf(parsed, 'state', ['active', 'inactive', 'foreground', 'background'] as const);
        if (state === 'inactive') return ok({ type: 'presence', state, reason: oneOf(parsed, 'reason', INACTIVE_REASONS) });
        return ok({ type: 'presence', state });
      }
      case 'register':
        return ok({ type: 'register', ...readRegistration(parsed) });
      case 'ack':
        return ok({ type: 'ack', id: id(parsed, 'id') });
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
