import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { WriteCork } from '../gateway/write-cork.js';

/**
 * The bare relays of issue 13: what the node's socket work costs with no routing, no durability, no actors.
 * Same wire as the node for the load generators (hello -> welcome, presence, one `message` frame per message,
 * acks read and parsed), so the very same clients and measurements run against it in the same process run.
 *
 * - `accept(msg)`: the in-process entry -> WebSocket relay (one `ws.send` per message; `corked` holds each socket's
 *   writes until the end of the turn, as the gateway does).
 * - `POST /v1/messages`: the bare `node:http` relay (parse, send the frame, answer 202).
 * - `onMessage`: hook for the cluster relay (bench/relay-cluster-node.ts), which feeds `deliver` from NATS.
 *
 * Routing is the presence bit alone: the PC if it last said `active`, else the phone.
 */

export interface RelayMessage {
  id: string;
  to: string;
  data?: unknown;
}

export interface Relay {
  port: number;
  /** Hold each socket's writes until the end of the turn (the corked variant); may change between phases. */
  corked: boolean;
  /** Sends the message's frame to the user's chosen socket; false when the user has none. */
  accept(msg: RelayMessage): boolean;
  /** Called once for each user whose first socket said hello (the cluster relay subscribes for it). */
  onUser?: (user: string) => void;
  /** Called for every ack a client sends. */
  onAck?: (user: string, id: string) => void;
  close(): Promise<void>;
}

interface UserSockets {
  pc?: WebSocket;
  mobile?: WebSocket;
  pcActive: boolean;
}

/** The claims of a hello token, read without verifying it: the relay bounds socket work, not authentication. */
function claims(token: string): { sub: string; kind: 'pc' | 'mobile' } {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

export async function startRelay(): Promise<Relay> {
  const users = new Map<string, UserSockets>();
  const cork = new WriteCork();
  const sockets = new WeakMap<WebSocket, Socket>();
  const relay: Relay = {
    port: 0,
    corked: false,
    accept(msg) {
      const u = users.get(msg.to);
      const ws = u && (u.pcActive ? u.pc : u.mobile);
      if (!ws) return false;
      if (relay.corked) cork.hold(sockets.get(ws));
      ws.send(JSON.stringify({ type: 'message', id: msg.id, data: msg.data, ts: Date.now() }));
      return true;
    },
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== '/v1/messages') return void res.writeHead(404).end();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const msg = JSON.parse(Buffer.concat(chunks).toString()) as RelayMessage;
      relay.accept(msg);
      const body = JSON.stringify({ id: msg.id, status: 'accepted' });
      res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on('upgrade', (req, socket: Socket, head) => {
    socket.setNoDelay(true);
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.set(ws, socket);
      let user: string | undefined;
      let kind: 'pc' | 'mobile' = 'pc';
      ws.on('message', (raw) => {
        const f = JSON.parse(raw.toString());
        if (f.type === 'ack') return relay.onAck?.(user!, f.id);
        if (f.type === 'hello') {
          const c = claims(f.token);
          user = c.sub;
          kind = c.kind;
          let u = users.get(user);
          if (!u) {
            users.set(user, (u = { pcActive: false }));
            relay.onUser?.(user);
          }
          u[kind] = ws;
          ws.send(JSON.stringify({ type: 'welcome', user, kind, heartbeatMs: 30_000 }));
        } else if (f.type === 'presence' && kind === 'pc' && user) {
          users.get(user)!.pcActive = f.state === 'active';
        }
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  relay.port = (server.address() as { port: number }).port;
  return relay;
}
