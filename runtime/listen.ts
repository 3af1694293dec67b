import type { Gateway } from '../gateway/server.js';
import { StartError } from './start-error.js';

/**
 * Why the listener could not be opened on SWITCHBOARD_HOST:SWITCHBOARD_PORT, by the `listen` error's code, and what
 * to change. Each of these but EAI_AGAIN is the configured address not being usable on this machine, so it is refused
 * like a bad value (exit 2, PROTOCOL.md section 1); EAI_AGAIN (DNS not answering) may pass, so it keeps exit 1 (a
 * supervisor retries it) with the same kind of line; any other error stays what it is (exit 1, "failed to start").
 */
const LISTEN_FAILURES: Record<string, (host: string, port: number) => string> = {
  ENOTFOUND: (host) => `SWITCHBOARD_HOST ${host} does not resolve to an address (ENOTFOUND); set SWITCHBOARD_HOST to a host name or IP address of this machine`,
  EAI_AGAIN: (host) => `SWITCHBOARD_HOST ${host} could not be resolved (EAI_AGAIN, DNS not answering); set SWITCHBOARD_HOST to an IP address of this machine or fix DNS`,
  EADDRNOTAVAIL: (host, port) => `cannot listen on ${host}:${port}: ${host} is not an address of this machine (EADDRNOTAVAIL); change SWITCHBOARD_HOST`,
  EADDRINUSE: (host, port) => `cannot listen on ${host}:${port}: the port is in use (EADDRINUSE); change SWITCHBOARD_PORT (or SWITCHBOARD_HOST), or stop what holds it`,
  EACCES: (host, port) => `cannot listen on ${host}:${port}: permission denied (EACCES; ports below 1024 need privileges); change SWITCHBOARD_PORT or SWITCHBOARD_HOST`,
};

/** The StartError (exit 2; 1 for EAI_AGAIN) naming SWITCHBOARD_HOST / SWITCHBOARD_PORT for an address failure of `listen`, else `err` itself. */
export function listenFailure(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  const message = LISTEN_FAILURES[code];
  return message ? new StartError(message(host, port), code === 'EAI_AGAIN' ? 1 : 2, { cause: err }) : err;
}

/**
 * Opens a node's listener (the gateway's, or a router-only node's operator endpoints) on SWITCHBOARD_HOST:SWITCHBOARD_PORT;
 * resolves with the bound port. An IPv6 address
 * may be configured in brackets (`[::1]`, as in a URL); Node's `listen` wants it bare. An address failure rejects with
 * `listenFailure`'s StartError.
 */
export async function listenOn(gateway: Pick<Gateway, 'listen'>, host: string, port: number): Promise<number> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  try {
    return await gateway.listen(bare, port);
  } catch (e) {
    throw listenFailure(e, host, port);
  }
}
