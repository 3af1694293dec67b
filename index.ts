/**
 * Switchboard's public entry: what other programs may import (`import { startNode } from 'switchboard'`). Like
 * nats.js's `mod.ts`, every name is listed one by one; anything not exported here is internal and may change.
 * The client libraries have entries of their own (package.json `exports`).
 */

// Starting a node (PROTOCOL.md section 1).
export { startNode } from './runtime/start.js';
export type { RunningNode, StartOptions } from './runtime/running-node.js';
export { ConfigError, parseConfig } from './runtime/config.js';
export type { Config, Role } from './runtime/config.js';

// The wire: messages, frames, decisions and errors (PROTOCOL.md sections 2-4).
export { CLOSE, ERRORS, MAX_FRAME_BYTES, SwitchboardError, decodeBatchRequest, decodeClientFrame, decodePolicy, decodeSendRequest } from './protocol/index.js';
export type {
  ChatMessage, ClearFrame, ClientFrame, ClientKind, Decision, DecisionReason, DecisionTarget, DeviceRegistration, ErrorCode, InactiveReason,
  MessageFrame, MobileOs, MobilePresence, PcPresence, Priority, Route, RoutedEvent, ServerFrame, TargetOutcome, UserView, Vendor, Via,
  BatchResult, MobilePolicy, QuietHours, UserPolicy,
} from './protocol/index.js';
