import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { Config } from './config.js';

/**
 * Connects to NATS with the operator's authentication and TLS settings passed through unchanged
 * (user/password, token, creds file, nkey seed file, TLS CA and client certificate).
 */
export function natsOptions(config: Config): NodeConnectionOptions {
  const n = config.nats;
  const opts: NodeConnectionOptions = {
    servers: [...config.natsServers],
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

/** `role` names a second connection of the same node (e.g. `control`) in the server's connection list. */
export function connectNats(config: Config, role?: string): Promise<NatsConnection> {
  const opts = natsOptions(config);
  return connect(role ? { ...opts, name: `${opts.name}-${role}` } : opts);
}
