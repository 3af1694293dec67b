import type { Clock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { Bus } from '../bus/bus.js';
import type { Subjects } from '../bus/subjects.js';
import type { RegistrationRules } from './registration-rules.js';
import type { DeviceRegistry, Ingress, PolicyStore } from '../store/types.js';

/** The configuration values the gateway uses (a slice of the node's config, PROTOCOL.md section 2). */
export interface GatewayConfig {
  /** SWITCHBOARD_HEARTBEAT_MS: the ping interval told to clients in `welcome`, ms. */
  readonly clientHeartbeatMs: number;
  /** SWITCHBOARD_FRAME_RATE: frames per second a client may send (burst 2x) before 4429. */
  readonly frameRate: number;
  /** SWITCHBOARD_SEND_BUFFER_BYTES: a client whose unsent bytes exceed this is closed (1013), bytes. */
  readonly sendBufferBytes: number;
}

export interface GatewayDeps {
  config: GatewayConfig;
  nodeId: string;
  bus: Bus;
  subjects: Subjects;
  /** Durable acceptance of `POST /v1/messages`; the composition root wires its consumer to the router. */
  ingress: Pick<Ingress, 'accept'>;
  registry: DeviceRegistry;
  /** Configured apps and allowed Web Push hosts, for device registrations (section 3). */
  registration: RegistrationRules;
  /** Per-user delivery policies (`…/policy`, and `idleAfterMs` in `welcome`). */
  policies: PolicyStore;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  /** HS256 secret of client hello tokens. */
  jwtSecret: string;
  /** Bearer key of /v1/* HTTP calls. */
  apiKey: string;
  /** Readiness of the whole node (`/readyz`, and whether messages are accepted). */
  isReady(): boolean;
}
