import type { ClientKind, InactiveReason, MessageFrame, MobileOs, PcPresence } from '../protocol/index.js';

/**
 * The WebSocket frames a client sees (PROTOCOL.md v1.1 section 2), as types only: nothing here exists at run time,
 * so the compiled clients load in a browser as ES modules without the server's code.
 */

export type { ClientKind, InactiveReason, MessageFrame, MobileOs, PcPresence };

/** Mobile presence (section 2): a backgrounded app counts as offline for direct delivery. */
export type MobileState = 'foreground' | 'background';

/** `welcome`: `heartbeatMs` is how often to ping; `idleAfterMs` the idle threshold the user's policy asks for. */
export interface Welcome {
  type: 'welcome';
  user: string;
  device: string;
  kind: ClientKind;
  heartbeatMs: number;
  /** Absent from servers older than v1.1; clients then use 60000 (section 2's default). */
  idleAfterMs?: number;
}

/** `clear` (section 4, read sync): remove these messages' notifications; `badge` is the user's unread count. */
export interface ClearFrame {
  type: 'clear';
  ids: string[];
  badge?: number;
}

/**
 * `policy`: the user's policy changed while this PC session was open; apply `idleAfterMs` now, as `welcome.idleAfterMs`.
 * An addition where section 2 is silent (servers that predate it never send it).
 */
export interface PolicyFrame {
  type: 'policy';
  idleAfterMs: number;
}

/** `error` frame: a rejected frame, the connection stays. `code` is from the server's error registry. */
export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
}

export type ServerFrameV11 =
  | Welcome
  | MessageFrame
  | ClearFrame
  | PolicyFrame
  | ErrorFrame
  | { type: 'pong' }
  | { type: 'registered' }
  | { type: 'unregistered' };

export type ClientFrameV11 =
  | { type: 'hello'; token: string }
  | { type: 'presence'; state: 'active' }
  | { type: 'presence'; state: 'inactive'; reason: InactiveReason }
  | { type: 'presence'; state: MobileState }
  | { type: 'register'; os: MobileOs; token: string; app?: string }
  | { type: 'unregister' }
  | { type: 'ack'; id: string }
  | { type: 'read'; ids: string[] }
  | { type: 'ping' };

/** Section 2's default idle threshold, used when `welcome` carries none. */
export const DEFAULT_IDLE_AFTER_MS = 60_000;
/** Section 2: at most 500 ids per `read` frame. */
export const MAX_READ_IDS = 500;
/** Section 2: a client frame is at most 64 KiB (65,536 bytes of UTF-8); a larger one closes the connection (1009). */
export const MAX_CLIENT_FRAME_BYTES = 64 * 1024;
/** Section 3: a message id is 1-128 characters (Unicode code points), any of them. */
export const MAX_MESSAGE_ID_CHARS = 128;
/** Section 2: the reasons of an `inactive` presence frame. */
export const INACTIVE_REASONS: ReadonlySet<string> = new Set<InactiveReason>(['idle', 'screen_locked', 'client_locked']);
/** Section 2: the states of a `presence` frame (`active` / `inactive` from a PC, `foreground` / `background` from a mobile). */
export const PRESENCE_STATES: ReadonlySet<string> = new Set(['active', 'inactive', 'foreground', 'background']);
/** Section 2's "who" column of the `presence` rows: the states each kind may report (the server refuses the others). */
export const PRESENCE_STATES_BY_KIND: Readonly<Record<ClientKind, ReadonlySet<string>>> = {
  pc: new Set(['active', 'inactive']),
  mobile: new Set(['foreground', 'background']),
};
/** Section 2: the `type` of every client frame (any other is answered `unknown_frame`). */
export const CLIENT_FRAME_TYPES: ReadonlySet<string> = new Set<ClientFrameV11['type']>(['hello', 'presence', 'register', 'unregister', 'ack', 'read', 'ping']);
/** Section 2: the `os` values of a `register` frame. */
export const MOBILE_OSES: ReadonlySet<string> = new Set<MobileOs>(['ios', 'android', 'harmony', 'web']);
/*
 * These are copies of the contract's numbers, not imports from protocol/: the client SDK is served to pages on its
 * own (gateway/static-pages.ts) and carries no server code. test/client-wire-contract.test.ts holds them to the server's.
 */
