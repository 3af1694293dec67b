import type { DeviceRegistry } from '../../store/types.js';
import type { RegistrationRules } from '../registration-rules.js';
import type { ClientKind, MobileOs, OwnerMessage, ServerFrame, SwitchboardError } from '../../protocol/index.js';

/** What a frame handler may do with the authenticated session it runs for; nothing of sockets or buses. */
export interface SessionContext {
  readonly user: string;
  readonly device: string;
  readonly kind: ClientKind;
  readonly os?: MobileOs;
  readonly sessionId: string;
  readonly registry: DeviceRegistry;
  /** Configured apps and allowed Web Push hosts (section 3 token rules). */
  readonly registration: RegistrationRules;
  now(): number;
  /** Publishes to the owner of this session's user. */
  publish(msg: OwnerMessage): void;
  send(frame: ServerFrame): void;
  /** Answers a rejected frame with an error frame; the connection stays. */
  reject(error: SwitchboardError): void;
  close(code: number, reason: string): void;
}
