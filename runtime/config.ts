import { hostname } from 'node:os';
import { DEFAULT_PLAYGROUND_MODE, PLAYGROUND_MODES, type PlaygroundMode } from '../gateway/playground-access.js';
import type { GatewayConfig } from '../gateway/server.js';
import { DEFAULT_MAX_ATTEMPTS as DEFAULT_PUSH_MAX_ATTEMPTS } from '../senders/circuit-breaker.js';
import { DEFAULT_DEDUPE_WINDOW_MS } from '../store/file-inbox.js';
import { allowedHostProblem, DEFAULT_WEBPUSH_HOSTS } from '../protocol/push-endpoint.js';
import { HMS_BADGE_CLASS_RULE, isHmsBadgeClass } from '../protocol/push-payload.js';
import { isHostOrAddress, NATS_URL_CREDENTIALS, natsServerProblem, vendorEndpointProblem } from './address-rules.js';

// Defaults owned by the module that uses them, re-exported here so the configuration reads in one place.
export { DEFAULT_DEDUPE_WINDOW_MS, DEFAULT_PUSH_MAX_ATTEMPTS };

/**
 * Configuration: PROTOCOL.md section 1. One parse function validates every variable at start and freezes
 * the result; a bad value is a `ConfigError` whose message names the variable and what it must be.
 */

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 7400;
export const DEFAULT_PARTITIONS = 64;
export const DEFAULT_SUBJECT_PREFIX = 'switchboard';
export const DEFAULT_DATA_DIR = './data';
/**
 * Default of SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES, bytes: 64 MiB, room for a store's snapshot rewrite and the accepts
 * of the seconds a load balancer takes to move traffic away once `/readyz` turns 503 (store/free-space.ts).
 */
export const DEFAULT_DATA_DIR_MIN_FREE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_ACK_TIMEOUT_MS = 5000;
export const DEFAULT_PRESENCE_TTL_MS = 90_000;
export const DEFAULT_PUSH_DELAY_MS = 0;
export const DEFAULT_APNS_ENDPOINT = 'https://api.push.apple.com';
export const DEFAULT_PASSIVATE_AFTER_MS = 60_000;
export const DEFAULT_DECISION_HISTORY_BYTES = 128 * 1024 * 1024;
/** Default of SWITCHBOARD_DECISION_SAVE_MS (cluster/decision-write-behind.ts). */
export const DEFAULT_DECISION_SAVE_MS = 5000;
export const DEFAULT_SEND_BUFFER_BYTES = 1024 * 1024;
export const DEFAULT_FRAME_RATE = 200;
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
export const DEFAULT_SUMMARY_INTERVAL_MS = 60_000;
/** V8's old generation may grow to (1 + this/100) times what the last full GC left live before the next one (runtime/heap-growth.ts). */
export const DEFAULT_HEAP_GROWTH_PERCENT = 300;
export const DEFAULT_REPLAY_GRACE_MS = 3000;
export const DEFAULT_NATS_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_HMS_AUTH_ENDPOINT = 'https://oauth-login.cloud.huawei.com';
export const DEFAULT_HMS_PUSH_ENDPOINT = 'https://push-api.cloud.huawei.com';
export const DEFAULT_SENDER_THREADS = 1;
/** Section 4, held messages: 7 days. */
export const DEFAULT_HOLD_TTL_SECONDS = 7 * 24 * 3600;
export const DEFAULT_HOLD_MAX = 1000;
/** Section 2, flow control. */
export const DEFAULT_MAX_INFLIGHT = 256;
/** FCM's own expiry of an unused registration token (firebase.google.com/docs/cloud-messaging/manage-tokens). */
export const DEFAULT_TOKEN_MAX_AGE_DAYS = 270;

export type Role = 'gateway' | 'router' | 'sender';
const ROLES: readonly Role[] = ['gateway', 'router', 'sender'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface Config {
  /** SWITCHBOARD_HOST, default 127.0.0.1. */
  readonly host: string;
  /** SWITCHBOARD_PORT, default 7400 (0 = any free port). */
  readonly port: number;
  /** SWITCHBOARD_NATS_URL, comma list; empty = single node on the embedded bus. */
  readonly natsServers: readonly string[];
  /** NATS authentication and TLS, passed to the NATS client as they are (issue 4, part 8). */
  readonly nats: {
    /** SWITCHBOARD_NATS_USER and SWITCHBOARD_NATS_PASSWORD. */
    readonly user?: string;
    readonly password?: string;
    /** SWITCHBOARD_NATS_TOKEN. */
    readonly token?: string;
    /** SWITCHBOARD_NATS_CREDS_FILE: a .creds file (JWT + nkey seed). */
    readonly credsFile?: string;
    /** SWITCHBOARD_NATS_NKEY_SEED_FILE: a file holding an nkey seed (SU...). */
    readonly nkeySeedFile?: string;
    /** SWITCHBOARD_NATS_TLS_CA_FILE, _TLS_CERT_FILE, _TLS_KEY_FILE. */
    readonly tlsCaFile?: string;
    readonly tlsCertFile?: string;
    readonly tlsKeyFile?: string;
    /** SWITCHBOARD_NATS_REPLICAS: JetStream replicas of the streams and buckets, default 1. */
    readonly replicas: number;
  };
  /** SWITCHBOARD_NODE_ID, default `<hostname>-<pid>`. */
  readonly nodeId: string;
  /** SWITCHBOARD_ROLES, default all three. */
  readonly roles: readonly Role[];
  /** SWITCHBOARD_PARTITIONS, default 64. */
  readonly partitions: number;
  /** SWITCHBOARD_SUBJECT_PREFIX, default `switchboard`. */
  readonly subjectPrefix: string;
  /** SWITCHBOARD_DATA_DIR, default `./data`. */
  readonly dataDir: string;
  /**
   * SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES: embedded only, `/readyz` answers 503 `unready` while fewer bytes than this are
   * free on the data dir's file system (accepts go on while writes succeed); 0 = never for space. Default 64 MiB.
   */
  readonly dataDirMinFreeBytes: number;
  /** SWITCHBOARD_JWT_SECRET; single node: generated at first start into the data dir. */
  readonly jwtSecret?: string;
  /** SWITCHBOARD_API_KEY; single node: generated at first start into the data dir. */
  readonly apiKey?: string;
  /** SWITCHBOARD_ACK_TIMEOUT_MS, default 5000. */
  readonly ackTimeoutMs: number;
  /** SWITCHBOARD_PRESENCE_TTL_MS, default 90000. */
  readonly presenceTtlMs: number;
  /** SWITCHBOARD_PUSH_DELAY_MS, default 0. */
  readonly pushDelayMs: number;
  /** SWITCHBOARD_HEARTBEAT_MS: the WebSocket ping interval told to clients in `welcome`, default a third of the presence TTL. */
  readonly clientHeartbeatMs: number;
  /** SWITCHBOARD_PASSIVATE_AFTER_MS: an idle user actor stops after this long, default 60000. */
  readonly passivateAfterMs: number;
  /** SWITCHBOARD_DEDUPE_WINDOW_MS: how long a message id is remembered for `duplicate`, default 120000. */
  readonly dedupeWindowMs: number;
  /** SWITCHBOARD_DECISION_HISTORY_BYTES: bound of all users' decision histories on a node, default 128 MiB. */
  readonly decisionHistoryBytes: number;
  /**
   * SWITCHBOARD_DECISION_SAVE_MS: cluster only, a changed decision history is written behind to the decisions bucket
   * within this, ms (cluster/decision-write-behind.ts); 0 saves only at a graceful handoff. Default 5000.
   */
  readonly decisionSaveMs: number;
  /** SWITCHBOARD_SEND_BUFFER_BYTES: a client whose unsent bytes exceed this is closed, default 1 MiB. */
  readonly sendBufferBytes: number;
  /** SWITCHBOARD_FRAME_RATE: frames per second a client may send before 4429, default 200. */
  readonly frameRate: number;
  /** SWITCHBOARD_REPLAY_GRACE_MS: after a restart, messages left unsettled wait this long for clients to reconnect, default 3000. */
  readonly replayGraceMs: number;
  /** SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS: how long start-up retries an unreachable NATS before it fails, default 30000. */
  readonly natsConnectTimeoutMs: number;
  /** SWITCHBOARD_LOG_LEVEL, default info. */
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** SWITCHBOARD_SHUTDOWN_TIMEOUT_MS: longest graceful drain on SIGTERM, default 10000. */
  readonly shutdownTimeoutMs: number;
  /**
   * SWITCHBOARD_SHUTDOWN_DELAY_MS: after SIGTERM, `/readyz` answers 503 `stopping` at once while the node goes on
   * serving as before for this long, then drains (load balancers and Kubernetes endpoints take the node out of
   * rotation first, as kube-apiserver's --shutdown-delay-duration does), default 0.
   */
  readonly shutdownDelayMs: number;
  /** SWITCHBOARD_SUMMARY_INTERVAL_MS: one `summary` info line per interval (0 = none), default 60000. */
  readonly summaryIntervalMs: number;
  /** SWITCHBOARD_HEAP_GROWTH_PERCENT: V8 heap growth between full GCs, % (0 = V8's own choice), default 300 (runtime/heap-growth.ts). */
  readonly heapGrowthPercent: number;
  readonly apns: {
    /** SWITCHBOARD_APNS_ENDPOINT, default https://api.push.apple.com. */
    readonly endpoint: string;
    readonly keyFile?: string;
    readonly keyId?: string;
    readonly teamId?: string;
    readonly topic?: string;
  };
  readonly fcm: {
    /** SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE; unset = FCM off. */
    readonly serviceAccountFile?: string;
    /** SWITCHBOARD_FCM_ENDPOINT: origin for the token exchange and the sends. */
    readonly endpoint?: string;
  };
  readonly hms: {
    /** SWITCHBOARD_HMS_APP_ID, _CLIENT_ID, _CLIENT_SECRET: Huawei Push Kit (all three or none). */
    readonly appId?: string;
    readonly clientId?: string;
    readonly clientSecret?: string;
    /** SWITCHBOARD_HMS_AUTH_ENDPOINT, default https://oauth-login.cloud.huawei.com. */
    readonly authEndpoint: string;
    /** SWITCHBOARD_HMS_PUSH_ENDPOINT, default https://push-api.cloud.huawei.com. */
    readonly pushEndpoint: string;
    /** SWITCHBOARD_HMS_BADGE_CLASS: the app's entry activity; set, alert pushes carry the unread count as badge. */
    readonly badgeClass?: string;
  };
  readonly webpush: {
    /** SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY, _VAPID_PRIVATE_KEY, _SUBJECT (all three or none). */
    readonly vapidPublicKey?: string;
    readonly vapidPrivateKey?: string;
    readonly subject?: string;
    /**
     * SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS: push service hosts Web Push endpoints may be on (comma list, `*.` prefix
     * for subdomains, IP addresses allowed), replacing the default list as given. Default DEFAULT_WEBPUSH_HOSTS
     * (FCM, Mozilla, Apple and Microsoft push services).
     */
    readonly allowedHosts: readonly string[];
  };
  /** SWITCHBOARD_TOKEN_MAX_AGE_DAYS: a push token neither stored nor seen for this long is pruned, default 270. */
  readonly tokenMaxAgeDays: number;
  /** SWITCHBOARD_APPS_FILE: JSON listing further apps' vendor credentials. */
  readonly appsFile?: string;
  /** SWITCHBOARD_PUSH_MAX_ATTEMPTS: vendor attempts per push before it fails, default 5. */
  readonly pushMaxAttempts: number;
  /** SWITCHBOARD_SENDER_THREADS: Piscina worker threads, default 1. */
  readonly senderThreads: number;
  /** SWITCHBOARD_HOLD_TTL_SECONDS: how long a message without `ttlSeconds` stays held, default 604800 (7 days). */
  readonly holdTtlSeconds: number;
  /** SWITCHBOARD_HOLD_MAX: held messages per user at most, the oldest dropped first, default 1000. */
  readonly holdMax: number;
  /** SWITCHBOARD_MAX_INFLIGHT: deliveries sent to one session and not yet acked, at most, default 256. */
  readonly maxInflight: number;
  /** SWITCHBOARD_PLAYGROUND: `on`, `off`, or `auto` (default: served only while the listener is on a loopback address). */
  readonly playground: PlaygroundMode;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, must: string) {
    super(`${variable} must be ${must}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

export function parseConfig(env: Env = process.env): Config {
  const v = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = v(name);
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      throw new ConfigError(name, `an integer ${min}-${max}`);
    }
    return Number(raw);
  };
  /** A vendor origin; `httpsOnly` for APNs, which the sender reaches over HTTP/2 with TLS only (senders/apns.ts). */
  const url = (name: string, def?: string, httpsOnly = false): string | undefined => {
    const raw = v(name) ?? def;
    if (raw === undefined) return undefined;
    const problem = vendorEndpointProblem(raw, httpsOnly);
    if (problem !== undefined) throw new ConfigError(name, problem);
    return new URL(raw).origin;
  };
  /** Push Kit's BadgeNotification.class: the app's entry activity, a package-qualified Java class name. */
  const hmsBadgeClass = (): string | undefined => {
    const raw = v('SWITCHBOARD_HMS_BADGE_CLASS');
    if (raw !== undefined && !isHmsBadgeClass(raw)) throw new ConfigError('SWITCHBOARD_HMS_BADGE_CLASS', HMS_BADGE_CLASS_RULE);
    return raw;
  };
  const secret = (name: string): string | undefined => {
    const raw = v(name);
    if (raw !== undefined && raw.length < 16) throw new ConfigError(name, 'at least 16 characters');
    return raw;
  };

  const host = v('SWITCHBOARD_HOST') ?? DEFAULT_HOST;
  if (!isHostOrAddress(host)) throw new ConfigError('SWITCHBOARD_HOST', 'a host name or IP address');

  const natsServers = (v('SWITCHBOARD_NATS_URL') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const [i, s] of natsServers.entries()) {
    // Only the syntax: a server that does not answer (yet) is retried at start (SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS).
    // The entry is named by its place, not quoted: it may carry credentials.
    const problem = natsServerProblem(s);
    if (problem !== undefined) {
      const which = natsServers.length > 1 ? `entry ${i + 1}: ` : '';
      throw new ConfigError('SWITCHBOARD_NATS_URL', `a comma-separated list of NATS URLs (nats://host:port); ${which}${problem}`);
    }
  }

  // The default must stay valid on any host: a Kubernetes pod name alone may be 63 characters.
  const nodeId = v('SWITCHBOARD_NODE_ID') ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 50)}-${process.pid}`;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(nodeId)) throw new ConfigError('SWITCHBOARD_NODE_ID', '1-64 characters of A-Z a-z 0-9 . _ -');

  const rolesRaw = (v('SWITCHBOARD_ROLES') ?? ROLES.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  if (rolesRaw.length === 0 || rolesRaw.some((r) => !(ROLES as readonly string[]).includes(r))) {
    throw new ConfigError('SWITCHBOARD_ROLES', 'a comma list of gateway, router, sender');
  }

  const subjectPrefix = v('SWITCHBOARD_SUBJECT_PREFIX') ?? DEFAULT_SUBJECT_PREFIX;
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(subjectPrefix)) throw new ConfigError('SWITCHBOARD_SUBJECT_PREFIX', 'one subject token of 1-32 characters A-Z a-z 0-9 _ -');

  const presenceTtlMs = int('SWITCHBOARD_PRESENCE_TTL_MS', DEFAULT_PRESENCE_TTL_MS, 1000, 86_400_000);
  const logLevel = v('SWITCHBOARD_LOG_LEVEL') ?? DEFAULT_LOG_LEVEL;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new ConfigError('SWITCHBOARD_LOG_LEVEL', `one of ${LOG_LEVELS.join(', ')}`);

  const jwtSecret = secret('SWITCHBOARD_JWT_SECRET');
  const apiKey = secret('SWITCHBOARD_API_KEY');
  if (natsServers.length > 0 && !jwtSecret) throw new ConfigError('SWITCHBOARD_JWT_SECRET', 'set when SWITCHBOARD_NATS_URL is set (every node must share it)');
  if (natsServers.length > 0 && !apiKey) throw new ConfigError('SWITCHBOARD_API_KEY', 'set when SWITCHBOARD_NATS_URL is set (every node must share it)');

  const apns = {
    endpoint: url('SWITCHBOARD_APNS_ENDPOINT', DEFAULT_APNS_ENDPOINT, true)!,
    keyFile: v('SWITCHBOARD_APNS_KEY_FILE'),
    keyId: v('SWITCHBOARD_APNS_KEY_ID'),
    teamId: v('SWITCHBOARD_APNS_TEAM_ID'),
    topic: v('SWITCHBOARD_APNS_TOPIC'),
  };
  const apnsSet = [apns.keyFile, apns.keyId, apns.teamId, apns.topic].filter((x) => x !== undefined).length;
  if (apnsSet !== 0 && apnsSet !== 4) {
    throw new ConfigError('SWITCHBOARD_APNS_KEY_FILE', 'set together with SWITCHBOARD_APNS_KEY_ID, _TEAM_ID and _TOPIC (all four or none)');
  }

  const allOrNone = (names: string[]) => {
    const set = names.filter((n) => v(n) !== undefined).length;
    if (set !== 0 && set !== names.length) throw new ConfigError(names[0], `set together with ${names.slice(1).join(', ')} (all or none)`);
  };
  allOrNone(['SWITCHBOARD_NATS_USER', 'SWITCHBOARD_NATS_PASSWORD']);
  allOrNone(['SWITCHBOARD_NATS_TLS_CERT_FILE', 'SWITCHBOARD_NATS_TLS_KEY_FILE']);
  const natsAuth = ['SWITCHBOARD_NATS_USER', 'SWITCHBOARD_NATS_TOKEN', 'SWITCHBOARD_NATS_CREDS_FILE', 'SWITCHBOARD_NATS_NKEY_SEED_FILE'].filter((n) => v(n) !== undefined);
  if (natsAuth.length > 1) throw new ConfigError(natsAuth[1], `unset when ${natsAuth[0]} is set (one NATS authentication method)`);
  const urlAuth = natsUrlCredentials(natsServers);
  if (urlAuth !== undefined && natsAuth.length > 0) {
    throw new ConfigError(natsAuth[0], 'unset when SWITCHBOARD_NATS_URL carries credentials (one NATS authentication method)');
  }
  allOrNone(['SWITCHBOARD_HMS_APP_ID', 'SWITCHBOARD_HMS_CLIENT_ID', 'SWITCHBOARD_HMS_CLIENT_SECRET']);
  allOrNone(['SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY', 'SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY', 'SWITCHBOARD_WEBPUSH_SUBJECT']);
  const allowedHostsRaw = v('SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS');
  const allowedHosts = allowedHostsRaw === undefined ? DEFAULT_WEBPUSH_HOSTS : allowedHostsRaw.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean);
  const hostProblem = allowedHosts.length === 0 ? 'the list is empty' : allowedHosts.map(allowedHostProblem).find((p) => p !== undefined);
  if (hostProblem !== undefined) {
    throw new ConfigError('SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS', `a comma list of host names, *.-prefixed host names or IP addresses (${hostProblem})`);
  }
  const playground = v('SWITCHBOARD_PLAYGROUND') ?? DEFAULT_PLAYGROUND_MODE;
  if (!(PLAYGROUND_MODES as readonly string[]).includes(playground)) throw new ConfigError('SWITCHBOARD_PLAYGROUND', `one of ${PLAYGROUND_MODES.join(', ')}`);
  const subject = v('SWITCHBOARD_WEBPUSH_SUBJECT');
  if (subject !== undefined && !/^(mailto:|https:\/\/)/.test(subject)) throw new ConfigError('SWITCHBOARD_WEBPUSH_SUBJECT', 'a mailto: or https:// URL');

  return Object.freeze({
    host,
    port: int('SWITCHBOARD_PORT', DEFAULT_PORT, 0, 65535),
    natsServers: Object.freeze(natsServers),
    nats: Object.freeze({
      user: v('SWITCHBOARD_NATS_USER') ?? urlAuth?.user,
      password: v('SWITCHBOARD_NATS_PASSWORD') ?? urlAuth?.password,
      token: v('SWITCHBOARD_NATS_TOKEN') ?? urlAuth?.token,
      credsFile: v('SWITCHBOARD_NATS_CREDS_FILE'),
      nkeySeedFile: v('SWITCHBOARD_NATS_NKEY_SEED_FILE'),
      tlsCaFile: v('SWITCHBOARD_NATS_TLS_CA_FILE'),
      tlsCertFile: v('SWITCHBOARD_NATS_TLS_CERT_FILE'),
      tlsKeyFile: v('SWITCHBOARD_NATS_TLS_KEY_FILE'),
      replicas: int('SWITCHBOARD_NATS_REPLICAS', 1, 1, 5),
    }),
    nodeId,
    roles: Object.freeze([...new Set(rolesRaw as Role[])]),
    partitions: int('SWITCHBOARD_PARTITIONS', DEFAULT_PARTITIONS, 1, 65536),
    subjectPrefix,
    dataDir: v('SWITCHBOARD_DATA_DIR') ?? DEFAULT_DATA_DIR,
    dataDirMinFreeBytes: int('SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES', DEFAULT_DATA_DIR_MIN_FREE_BYTES, 0, 2 ** 40),
    jwtSecret,
    apiKey,
    ackTimeoutMs: int('SWITCHBOARD_ACK_TIMEOUT_MS', DEFAULT_ACK_TIMEOUT_MS, 1, 3_600_000),
    presenceTtlMs,
    pushDelayMs: int('SWITCHBOARD_PUSH_DELAY_MS', DEFAULT_PUSH_DELAY_MS, 0, 3_600_000),
    clientHeartbeatMs: int('SWITCHBOARD_HEARTBEAT_MS', Math.floor(presenceTtlMs / 3), 100, 3_600_000),
    passivateAfterMs: int('SWITCHBOARD_PASSIVATE_AFTER_MS', DEFAULT_PASSIVATE_AFTER_MS, 10, 86_400_000),
    dedupeWindowMs: int('SWITCHBOARD_DEDUPE_WINDOW_MS', DEFAULT_DEDUPE_WINDOW_MS, 1000, 86_400_000),
    decisionHistoryBytes: int('SWITCHBOARD_DECISION_HISTORY_BYTES', DEFAULT_DECISION_HISTORY_BYTES, 0, 2 ** 40),
    decisionSaveMs: int('SWITCHBOARD_DECISION_SAVE_MS', DEFAULT_DECISION_SAVE_MS, 0, 3_600_000),
    sendBufferBytes: int('SWITCHBOARD_SEND_BUFFER_BYTES', DEFAULT_SEND_BUFFER_BYTES, 65_536, 1 << 30),
    frameRate: int('SWITCHBOARD_FRAME_RATE', DEFAULT_FRAME_RATE, 1, 1_000_000),
    replayGraceMs: int('SWITCHBOARD_REPLAY_GRACE_MS', DEFAULT_REPLAY_GRACE_MS, 0, 600_000),
    natsConnectTimeoutMs: int('SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS', DEFAULT_NATS_CONNECT_TIMEOUT_MS, 0, 3_600_000),
    logLevel: logLevel as Config['logLevel'],
    shutdownTimeoutMs: int('SWITCHBOARD_SHUTDOWN_TIMEOUT_MS', DEFAULT_SHUTDOWN_TIMEOUT_MS, 100, 600_000),
    shutdownDelayMs: int('SWITCHBOARD_SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    summaryIntervalMs: int('SWITCHBOARD_SUMMARY_INTERVAL_MS', DEFAULT_SUMMARY_INTERVAL_MS, 0, 86_400_000),
    heapGrowthPercent: int('SWITCHBOARD_HEAP_GROWTH_PERCENT', DEFAULT_HEAP_GROWTH_PERCENT, 0, 1000),
    apns: Object.freeze(apns),
    fcm: Object.freeze({
      serviceAccountFile: v('SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE'),
      endpoint: url('SWITCHBOARD_FCM_ENDPOINT'),
    }),
    hms: Object.freeze({
      appId: v('SWITCHBOARD_HMS_APP_ID'),
      clientId: v('SWITCHBOARD_HMS_CLIENT_ID'),
      clientSecret: v('SWITCHBOARD_HMS_CLIENT_SECRET'),
      authEndpoint: url('SWITCHBOARD_HMS_AUTH_ENDPOINT', DEFAULT_HMS_AUTH_ENDPOINT)!,
      pushEndpoint: url('SWITCHBOARD_HMS_PUSH_ENDPOINT', DEFAULT_HMS_PUSH_ENDPOINT)!,
      badgeClass: hmsBadgeClass(),
    }),
    webpush: Object.freeze({
      vapidPublicKey: v('SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY'),
      vapidPrivateKey: v('SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY'),
      subject,
      allowedHosts: Object.freeze([...allowedHosts]),
    }),
    tokenMaxAgeDays: int('SWITCHBOARD_TOKEN_MAX_AGE_DAYS', DEFAULT_TOKEN_MAX_AGE_DAYS, 1, 3650),
    appsFile: v('SWITCHBOARD_APPS_FILE'),
    pushMaxAttempts: int('SWITCHBOARD_PUSH_MAX_ATTEMPTS', DEFAULT_PUSH_MAX_ATTEMPTS, 1, 100),
    senderThreads: int('SWITCHBOARD_SENDER_THREADS', DEFAULT_SENDER_THREADS, 1, 64),
    holdTtlSeconds: int('SWITCHBOARD_HOLD_TTL_SECONDS', DEFAULT_HOLD_TTL_SECONDS, 1, 28 * 24 * 3600),
    holdMax: int('SWITCHBOARD_HOLD_MAX', DEFAULT_HOLD_MAX, 1, 1_000_000),
    maxInflight: int('SWITCHBOARD_MAX_INFLIGHT', DEFAULT_MAX_INFLIGHT, 1, 100_000),
    playground: playground as PlaygroundMode,
  });
}

/** The gateway's slice of the configuration: it gets the values it uses, not the whole Config. */
export function gatewayConfigOf(config: Config): GatewayConfig {
  return {
    clientHeartbeatMs: config.clientHeartbeatMs, frameRate: config.frameRate, sendBufferBytes: config.sendBufferBytes, maxInflight: config.maxInflight,
    playground: config.playground,
    // Vendors with credentials for the default app: the playground says which one a push would have used.
    pushVendors: Object.freeze({
      apns: config.apns.keyFile !== undefined,
      fcm: config.fcm.serviceAccountFile !== undefined,
      hms: config.hms.appId !== undefined,
      webpush: config.webpush.vapidPublicKey !== undefined,
    }),
  };
}

/**
 * The credentials written in SWITCHBOARD_NATS_URL's entries (`nats://user:password@host`, or `nats://token@host`, the
 * NATS URL forms), percent-decoded, or undefined when no entry has any. The NATS client ignores credentials in a
 * server URL (a server that requires them answers "Authorization Violation"), so they are passed on as its `user` /
 * `pass` or `token` options instead (runtime/nats-connect.ts), and the URLs go to it without them. Every entry that
 * carries credentials must carry the same: ConfigError otherwise.
 */
export function natsUrlCredentials(servers: readonly string[]): { user?: string; password?: string; token?: string } | undefined {
  const found = new Set<string>();
  for (const s of servers) {
    const m = NATS_URL_CREDENTIALS.exec(s);
    if (m !== null) found.add(m[2]);
  }
  if (found.size === 0) return undefined;
  if (found.size > 1) throw new ConfigError('SWITCHBOARD_NATS_URL', 'a list whose entries carry the same credentials, if any');
  const [info] = found;
  const colon = info.indexOf(':');
  try {
    if (colon < 0) return { token: decodeURIComponent(info) };
    return { user: decodeURIComponent(info.slice(0, colon)), password: decodeURIComponent(info.slice(colon + 1)) };
  } catch {
    throw new ConfigError('SWITCHBOARD_NATS_URL', 'a list whose credentials are percent-encoded UTF-8');
  }
}
