import { STATUS_CODES, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { CLOSE, MAX_FRAME_BYTES, SwitchboardError } from '../protocol/index.js';
import type { GatewayDeps } from './deps.js';
import { DashboardFeed } from './dashboard-feed.js';
import { EventStream } from './event-stream.js';
import { createHttpApi } from './http-api.js';
import { deferContinue } from './http-io.js';
import { SessionTable } from './session-table.js';
import { StaticPages } from './static-pages.js';

export type { GatewayConfig, GatewayDeps } from './deps.js';

export interface Gateway {
  /** Starts serving HTTP and WebSocket on one port; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  /**
   * The stop is coming (SWITCHBOARD_SHUTDOWN_DELAY_MS): `/readyz` answers 503 `stopping` from now on, so load balancers
   * take this node out of rotation, while every request and upgrade is still served as before.
   */
  announceStop(): void;
  /** Draining: /readyz answers 503, new /v1/* requests get 503 shutting_down, new upgrades are refused. */
  stopAccepting(): void;
  /** Closes every WebSocket session (default 1001 going away) and resolves with how many once all are gone. */
  closeSessions(code?: number): Promise<number>;
  /** Resends every session to its owner (cluster: after the bus reconnected); returns how many. */
  resendSessions(): number;
  /** Stops accepting, closes the sessions and the listener. */
  close(): Promise<void>;
}

const WS_PATH = '/v1/ws';
/** ws's own frame limit (bytes), above section 2's MAX_FRAME_BYTES, which the session enforces with a reason. */
export const WS_MAX_PAYLOAD_BYTES = 4 * MAX_FRAME_BYTES;

/** Slow or idle HTTP clients cannot hold a request open longer than this. */
const REQUEST_TIMEOUT_MS = 30_000;

/** One port for the HTTP API (PROTOCOL.md section 3) and client WebSockets (section 2). */
export function createGateway(deps: GatewayDeps): Gateway {
  const { log } = deps;
  let stopping = false;
  let announced = false;
  const sessions = new SessionTable({ ...deps, jwtKey: new TextEncoder().encode(deps.jwtSecret) });
  let listenHost = ''; // set by listen()
  const dashboard = new DashboardFeed({ nodeId: deps.nodeId, metrics: deps.metrics, clock: deps.clock, cluster: deps.cluster });
  const eventStream = deps.events && new EventStream({ source: deps.events, clock: deps.clock });
  const api = createHttpApi({ ...deps, isStopping: () => stopping, isAnnouncedStopping: () => announced || stopping, dashboard, eventStream, pages: new StaticPages(), listenHost: () => listenHost });
  const server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS }, api);
  // `Expect: 100-continue`: the 100 goes out only once a body is wanted (http-io.ts deferContinue).
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    deferContinue(req, res);
    api(req, res);
  });
  // Section 2's 64 KiB frame limit is checked by the session, which answers an error frame `frame_too_large` and
  // closes 1009 "frame too large". ws's maxPayload is a backstop 4x higher: ws refuses a frame over it from its
  // header alone (1009, no reason), so no connection ever buffers more. No compression: it would let a small
  // frame inflate past the limit checks and costs CPU per message.
  const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_PAYLOAD_BYTES, perMessageDeflate: false, clientTracking: false });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err }, 'upgrade socket error'));
    const path = (req.url ?? '/').split('?')[0];
    if (path !== WS_PATH) return refuseUpgrade(socket, new SwitchboardError('not_found', `no WebSocket endpoint here: clients connect to ${WS_PATH}`, { whole: true }));
    if (stopping) return refuseUpgrade(socket, new SwitchboardError('shutting_down', 'node is shutting down: connect to another node', { whole: true }));
    wss.handleUpgrade(req, socket, head, (ws) => sessions.open(ws, socket));
  });

  const closeSessions = (code: number = CLOSE.goingAway) => sessions.closeAll(code, code === CLOSE.goingAway ? 'server shutting down' : 'closed by server');

  return {
    listen(host, port) {
      listenHost = host;
      sessions.start();
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          const bound = typeof address === 'object' && address ? address.port : port;
          log.info({ host, port: bound }, 'gateway listening');
          resolve(bound);
        });
      });
    },
    announceStop() {
      announced = true;
    },
    stopAccepting() {
      stopping = true;
    },
    closeSessions,
    resendSessions: () => sessions.resendAll(),
    async close() {
      stopping = true;
      dashboard.close();
      eventStream?.close();
      await closeSessions();
      sessions.stop();
      await new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function refuseUpgrade(socket: Duplex, error: SwitchboardError): void {
  // The same `{"error":{"code","message"}}` body as every other refusal (README "Error codes").
  const body = JSON.stringify({ error: error.toBody() });
  socket.end(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
