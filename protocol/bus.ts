import { Packr } from 'msgpackr';
import type { ChatMessage, DeviceRegistration, MobileOs } from './message.js';
import type { ClearFrame, ClientKind, InactiveReason, MessageFrame, PolicyFrame } from './frames.js';
import type { Decision, UserView } from './decision.js';

/**
 * Messages between the gateway and the user actors (and back), whatever the bus.
 * They are created by our own code after edge validation, so nothing re-checks them inside.
 */

/** Where a client session lives: the gateway node holding the socket, and the socket's id there. */
export interface SessionRef {
  node: string;
  id: string;
}

/**
 * Why Switchboard removed a push token (`switchboard.events.token_removed`, section 3): `moved` (stored for
 * another user or device: one token, one device), `replaced` (the device stored a different token in its place:
 * `register` frame or `PUT …/devices/{d}`), `dead` (the vendor said so, section 4), `unregistered` (the
 * `unregister` frame), `deleted` (`DELETE …/devices/{d}`), `pruned` (not stored or seen for
 * SWITCHBOARD_TOKEN_MAX_AGE_DAYS).
 */
export type TokenRemovedReason = 'moved' | 'replaced' | 'dead' | 'unregistered' | 'deleted' | 'pruned';

/** The `switchboard.events.token_removed` body (section 3); never the token itself. */
export interface TokenRemovedEvent {
  user: string;
  device: string;
  os: MobileOs;
  reason: TokenRemovedReason;
}

/** Gateway -> owner of `user`'s partition. */
export type OwnerMessage =
  /** `bot`: a PC session of a bot or bridge, which never makes the PC state active (section 4 is about a human). */
  /**
   * `at`: when the client was last heard (staleness carries over a resync); `openedAt`: when its connection was
   * accepted by the gateway, so that an owner hearing of two sessions of one device keeps the newer one (section 2).
   */
  | { type: 'session_open'; user: string; device: string; kind: ClientKind; os?: MobileOs; bot?: true; session: SessionRef; at: number; openedAt?: number }
  | { type: 'session_close'; user: string; device: string; sessionId: string; at: number }
  | { type: 'presence'; user: string; device: string; sessionId: string; state: 'active' | 'inactive' | 'foreground' | 'background'; reason?: InactiveReason; at: number }
  | { type: 'touch'; user: string; device: string; sessionId: string; at: number }
  | { type: 'ack'; user: string; device: string; sessionId: string; id: string; at: number }
  | ({ type: 'device_put'; user: string; device: string } & DeviceRegistration)
  | { type: 'device_delete'; user: string; device: string }
  /** The registry removed `token` from this device (any reason): an actor still holding it in memory drops it. */
  | { type: 'token_removed'; user: string; device: string; token: string }
  | { type: 'route'; user: string; msg: ChatMessage }
  /** The user's policy was stored anew (`PUT …/policy`): the owner reads it again from the policy store. */
  | { type: 'policy_changed'; user: string }
  /** Section 4 read sync: the `read` frame of session `sessionId` (left out for `POST …/read`). */
  | { type: 'read'; user: string; ids: string[]; device?: string; sessionId?: string; at: number };

/** Owner -> the gateway node holding a session. */
export type GatewayMessage =
  | {
      type: 'deliver'; sessionId: string; frame: MessageFrame;
      /** Whose message: lets the cluster fence it by the user's partition. */
      user?: string;
      /** Cluster: the owner's lease fence for the user's partition; a gateway drops deliveries older than one it saw. */
      fence?: { partition: number; revision: number };
    }
  /** A frame other than a delivery (section 2 `clear`, `policy`): sent as it is, no ack expected. */
  | { type: 'frame'; sessionId: string; frame: ClearFrame | PolicyFrame; user?: string; fence?: { partition: number; revision: number } }
  | { type: 'close_session'; sessionId: string; code: number; reason: string }
  /** A new owner of `partition` asks every gateway to send the sessions it holds there again (takeover). */
  | { type: 'resync'; partition: number; partitions: number };

/** Request/reply to the owner (answered on any node by forwarding, section 3). */
export type OwnerQuery =
  | { type: 'user_query'; user: string }
  | { type: 'decisions_query'; user: string; limit: number }
  /** `POST /v1/users/{u}/read`: answered once the read is durable. */
  | { type: 'read_query'; user: string; ids: string[] };

export type OwnerReply =
  | { type: 'user_view'; view: UserView }
  | { type: 'decisions'; decisions: Decision[] }
  | { type: 'read_done'; unread: number }
  /** A gateway resent the sessions it holds in a partition (answer to `resync`). */
  | { type: 'resynced'; node: string; sessions: number }
  | { type: 'error'; code: string; message: string };

/** Embedded mode publishes token removals on the in-process bus under this type (section 3 event). */
export type TokenRemovedBusEvent = { type: 'token_removed_event' } & TokenRemovedEvent;

export type BusMessage = OwnerMessage | GatewayMessage | OwnerQuery | OwnerReply | TokenRemovedBusEvent;

// One Packr with record structures off: every peer can decode every message without shared state.
const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeBusMessage(msg: BusMessage): Uint8Array {
  return packr.pack(msg);
}

export function decodeBusMessage(bytes: Uint8Array): BusMessage {
  return packr.unpack(bytes) as BusMessage;
}
