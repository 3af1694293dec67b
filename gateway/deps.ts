import type { Clock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { Bus } from '../bus/bus.js';
import type { Subjects } from '../bus/subjects.js';
import type { Vendor } from '../protocol/index.js';
import type { RegistrationRules } from './registration-rules.js';
import type { DeviceRegistry, Ingress, PolicyStore } from '../store/types.js';
import type { ClusterView, DashboardFeed } from './dashboard-feed.js';
import type { PlaygroundMode } from './playground-access.js';
import type { StaticPages } from './static-pages.js';
import type { EventSource, EventStream } from './event-stream.js';

/** The configuration values the gateway uses (a slice of the node's config, PROTOCOL.md section 2). */
export interface GatewayConfig {
  /** SWITCHBOARD_HEARTBEAT_MS: the ping interval told to clients in `welcome`, ms. */
  readonly clientHeartbeatMs: number;
  /** SWITCHBOARD_FRAME_RATE: frames per second a client may send (burst 2x) before 4429. */
  readonly frameRate: number;
  /** SWITCHBOARD_SEND_BUFFER_BYTES: a client whose unsent bytes exceed this is closed (1013), bytes. */
  readonly sendBufferBytes: number;
  /** SWITCHBOARD_MAX_INFLIGHT: sizes the set of sent-and-unacked ids whose acks take no rate-limit token. */
  readonly maxInflight: number;
  /** SWITCHBOARD_PLAYGROUND: whether `/playground` is served (issue 12). */
  readonly playground: PlaygroundMode;
  /** Which vendors have credentials (default app); the playground says which one a push would have used. */
  readonly pushVendors: Readonly<Record<Vendor, boolean>>;
}

export interface GatewayDeps {
  config: GatewayConfig;
  nodeId: string;
  bus: Bus;
  subjects: Subjects;
  /** Durable acceptance of `POST /v1/messages` (and `…/batch`); the composition root wires its consumer to the router. */
  ingress: Pick<Ingress, 'accept' | 'acceptMany'>;
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
  /**
   * True while the node still accepts messages but asks its load balancer for no new traffic: `/readyz` answers 503
   * `unready`, accepts go on (embedded: the data dir's free space below its floor, before a write fails). Default never.
   */
  isDegraded?(): boolean;
  /** Cluster membership and partition ownership for the dashboard; only the cluster composition root provides it. */
  cluster?: ClusterView;
  /** The node's `token_removed` events for `GET /v1/events` (gateway/event-stream.ts); absent: that path is 404. */
  events?: EventSource;
}

/** The gateway's deps the HTTP API uses, plus whether the gateway is draining before shutdown. */
export type HttpApiDeps = Pick<GatewayDeps, 'bus' | 'subjects' | 'ingress' | 'registry' | 'registration' | 'policies' | 'metrics' | 'log' | 'clock' | 'apiKey' | 'isReady' | 'isDegraded' | 'config' | 'jwtSecret'> & {
  /** True once the gateway stopped accepting (draining before shutdown). */
  isStopping(): boolean;
  /** True once the node announced its stop: `/readyz` answers 503 `stopping` (SWITCHBOARD_SHUTDOWN_DELAY_MS); default `isStopping`. */
  isAnnouncedStopping?(): boolean;
  /** The operator dashboard's figures and live stream (issue 12). */
  dashboard: DashboardFeed;
  /** `GET /v1/events`; absent when the node gave the gateway no event source. */
  eventStream?: EventStream;
  /** The page assets (`pages/`). */
  pages: StaticPages;
  /** The host the listener is bound to (decides whether `/playground` is served in `auto` mode). */
  listenHost(): string;
};
