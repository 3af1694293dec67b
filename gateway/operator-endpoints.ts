import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import { SwitchboardError } from '../protocol/index.js';
import { sendError, sendJson } from './http-io.js';

/** What the operator endpoints read: the node's readiness and its metrics. */
export interface OperatorDeps {
  metrics: Metrics;
  /** Readiness of the whole node: `/readyz` 200 while true (and not degraded or stopping). */
  isReady(): boolean;
  /** True once the node is draining before shutdown: `/readyz` answers 503 `stopping`. */
  isStopping(): boolean;
  /** Accepting still, but asking for no new traffic (GatewayDeps.isDegraded): `/readyz` 503 `unready`. */
  isDegraded?(): boolean;
}

/** `/readyz`'s `status`: section 3 gives only the 200/503; the word says why. */
export type ReadyStatus = 'ready' | 'starting' | 'unready' | 'stopping';

/**
 * PROTOCOL.md section 3's `GET /healthz`, `GET /readyz`, `GET /metrics` (no key needed), for the gateway's listener
 * and for the listener a router-only cluster node opens for them alone (`createOperatorServer`).
 */
export class OperatorEndpoints {
  /** The node answered ready once (to an accept or to `/readyz`): a later 503 from `/readyz` says `unready`. */
  private wasReady = false;

  constructor(private readonly deps: OperatorDeps) {}

  /** `deps.isReady()`, remembering that the node was ready once (see `status`). */
  isReady(): boolean {
    const ready = this.deps.isReady();
    if (ready) this.wasReady = true;
    return ready;
  }

  /**
   * `unready`: it was ready and is not now (a failing disk, NATS lost, partitions moving), not `starting`; or it
   * accepts but asks for no new traffic (a nearly full disk): then `wasReady` is already set by `isReady()`.
   */
  status(): ReadyStatus {
    const ready = this.isReady();
    return this.deps.isStopping() ? 'stopping' : ready && !this.deps.isDegraded?.() ? 'ready' : this.wasReady ? 'unready' : 'starting';
  }

  /** Serves `path` when it is one of the three (GET or HEAD; else 405 with `Allow`); false for any other path. */
  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    if (path !== '/healthz' && path !== '/readyz' && path !== '/metrics') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new SwitchboardError('method_not_allowed'), { allow: 'GET, HEAD' });
      return true;
    }
    if (path === '/healthz') sendJson(res, 200, { status: 'ok' });
    else if (path === '/readyz') {
      const status = this.status();
      sendJson(res, status === 'ready' ? 200 : 503, { status });
    } else {
      const { registry } = this.deps.metrics;
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(text);
    }
    return true;
  }
}

/** The listener of a node that serves only the operator endpoints. */
export interface OperatorServer {
  /** Resolves with the bound port (useful with port 0); rejects with `listen`'s error. */
  listen(host: string, port: number): Promise<number>;
  /** Closes the listener and its connections. */
  close(): Promise<void>;
}

/**
 * A router-only cluster node's listener on SWITCHBOARD_HOST:SWITCHBOARD_PORT: `/healthz`, `/readyz` and `/metrics`
 * and nothing else (404 `not_found`). Without it such a node had no port at all, so its routing and push metrics
 * could not be scraped and a supervisor had no health check for it. No client sessions, no `/v1` API: those are
 * the gateway role's.
 */
export function createOperatorServer(deps: OperatorDeps & { log: Logger }): OperatorServer {
  const endpoints = new OperatorEndpoints(deps);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    endpoints.serve(req, res, path).then(
      (served) => { if (!served) sendError(res, new SwitchboardError('not_found', 'a router-only node serves /healthz, /readyz and /metrics')); },
      (err: unknown) => {
        deps.log.error({ err, path }, 'operator endpoint failed');
        if (!res.headersSent) sendError(res, new SwitchboardError('internal'));
        else res.destroy();
      },
    );
  });
  return {
    listen: (host, port) => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    }),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
