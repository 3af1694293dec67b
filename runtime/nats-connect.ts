import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { Clock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Config } from './config.js';
import { StartError } from './start-error.js';
import { NATS_URL_CREDENTIALS } from './address-rules.js';

/**
 * Connects to NATS with the operator's authentication and TLS settings passed through unchanged
 * (user/password, token, creds file, nkey seed file, TLS CA and client certificate). Credentials written in the URLs
 * arrive as user/password or token (`natsUrlCredentials`: the client ignores them in a URL) and the URLs go to the
 * client without them, so none of its messages can carry them.
 */
export function natsOptions(config: Config): NodeConnectionOptions {
  const n = config.nats;
  const opts: NodeConnectionOptions = {
    servers: config.natsServers.map(withoutCredentials),
    name: `switchboard-${config.nodeId}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 5000,
    // nats.js otherwise builds an Error with a stack trace for every request and publish ack, in case it fails:
    // ~10% of a cluster node's CPU at load (issue 13). Failures still reject, only without the caller's stack.
    noAsyncTraces: true,
  };
  if (n.user) {
    opts.user = n.user;
    opts.pass = n.password;
  }
  if (n.token) opts.token = n.token;
  if (n.credsFile) opts.authenticator = credsAuthenticator(readFileSync(n.credsFile));
  if (n.nkeySeedFile) opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(n.nkeySeedFile, 'utf8').trim()));
  if (n.tlsCaFile || n.tlsCertFile) {
    opts.tls = { ...(n.tlsCaFile ? { caFile: n.tlsCaFile } : {}), ...(n.tlsCertFile ? { certFile: n.tlsCertFile, keyFile: n.tlsKeyFile } : {}) };
  }
  return opts;
}

/** Gap between two connect tries at start-up. */
export const NATS_RETRY_MS = 1000;
/** How long one connect try waits for the server. */
export const NATS_TRY_TIMEOUT_MS = 2000;

/**
 * The first connection, retried while NATS is unreachable (issue 8 part 5): one `warn` line per try naming the
 * URL(s), for at most `config.natsConnectTimeoutMs`; then a `StartError` naming the URL(s) and the last error.
 * Credentials in a URL (`nats://user:pass@host`) are never printed. `connect` is injectable for tests; `role` names a
 * second connection of the same node (e.g. `control`) in the server's connection list.
 */
export async function connectNats(
  config: Config,
  deps: { log: Logger; clock: Clock; connect?: (opts: NodeConnectionOptions) => Promise<NatsConnection>; role?: string },
): Promise<NatsConnection> {
  const { log, clock } = deps;
  const tryConnect = deps.connect ?? connect;
  const urls = config.natsServers.map(withoutCredentials).join(', ');
  const deadline = clock.now() + config.natsConnectTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      const opts = natsOptions(config);
      return await tryConnect({ ...opts, ...(deps.role ? { name: `${opts.name}-${deps.role}` } : {}), timeout: NATS_TRY_TIMEOUT_MS });
    } catch (e) {
      const why = (e as { code?: string }).code ?? (e as Error).message;
      const left = deadline - clock.now();
      if (left <= 0) {
        throw new StartError(`NATS not reachable at ${urls} (${why}); tried ${attempt} times over ${Math.round(config.natsConnectTimeoutMs / 1000)} s`, 1, { cause: e });
      }
      log.warn({ nats: urls, attempt, err: why, retryInMs: Math.min(NATS_RETRY_MS, left) }, `NATS not reachable at ${urls}; retrying`);
      await new Promise<void>((resolve) => clock.setTimeout(resolve, Math.min(NATS_RETRY_MS, left)));
    }
  }
}

/** A server URL as it may be logged: user and password removed. */
export function withoutCredentials(server: string): string {
  return server.replace(NATS_URL_CREDENTIALS, '$1');
}
