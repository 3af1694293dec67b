import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
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
 *   writes until the end of the turn, as the gateway does). With `durable` on, the message is first made durable as
 *   below (its JSON appended in the turn's one `O_DSYNC` write), then sent: paced at 10k msgs/s, the floor under
 *   `embedded_p99_ms_at_10k` that the contract's durability puts there on this disk (section 3: "A 503 answer means
 *   the message was not accepted: it is never delivered", so no message may go out before its write returned).
 * - `POST /v1/messages`: the bare `node:http` relay (parse, send the frame, answer 202). With `durable` on, it first
 *   makes the body durable as the contract's 202 requires (section 3: answered once durably accepted), with the
 *   least code that does it: the bodies of one event-loop turn appended to one file in one `write` on an `O_DSYNC`
 *   descriptor, the next turn's waiting while a write is in flight (group commit), then each frame sent and each 202
 *   answered. No checksum, no MessagePack, no dedupe, no replay: the floor of a durable accept, for the `context`
 *   line `embedded_http_vs_durable_relay` beside the goal (issue 13's baseline stays the relay without it).
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
  /**
   * POST /v1/messages answers 202, and `accept` sends the frame, only once the body is written to an `O_DSYNC` file
   * (see above); may change between phases.
   */
  durable: boolean;
  /** The durable variant's writes so far and the bodies they carried; undefined without a durable file. */
  readonly durableStats?: { readonly writes: number; readonly bodies: number };
  /**
   * Sends the message's frame to the user's chosen socket (with `durable`, once its JSON is on disk); false when the
   * user has none. Throws when `durable` is set on a relay started without a durable file.
   */
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

/** A body waiting for its durable write, and what to do once it is on disk. */
interface DurableAccept {
  body: Buffer;
  done: () => void;
}

/**
 * Group commit in its barest form: `append` queues a body; one write of everything queued is in flight at a time
 * (the first starting one microtask after the first append, so a turn's bodies share it); `done` runs once the write
 * returned (O_DSYNC: on disk). A failed write throws out of the bench (a relay has nobody to answer 503).
 */
class DurableFile {
  private queue: DurableAccept[] = [];
  private writing = false;
  /** Writes made, and the bodies they carried (a test checks that bodies share writes). */
  readonly stats = { writes: 0, bodies: 0 };

  private constructor(private readonly file: FileHandle) {}

  static async open(path: string): Promise<DurableFile> {
    const dsync = (constants as { O_DSYNC?: number }).O_DSYNC ?? 0;
    return new DurableFile(await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | dsync));
  }

  append(a: DurableAccept): void {
    this.queue.push(a);
    if (!this.writing) {
      this.writing = true;
      queueMicrotask(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const data = Buffer.concat(batch.map((a) => a.body));
      for (let at = 0; at < data.length; ) at += (await this.file.write(data, at)).bytesWritten;
      this.stats.writes++;
      this.stats.bodies += batch.length;
      for (const a of batch) a.done();
    }
    this.writing = false;
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/** `durableFile`: where the `durable` variant appends (a temp file the caller removes); without it `durable` cannot be set. */
export async function startRelay(durableFile?: string): Promise<Relay> {
  const users = new Map<string, UserSockets>();
  const log = durableFile === undefined ? undefined : await DurableFile.open(durableFile);
  const cork = new WriteCork();
  const sockets = new WeakMap<WebSocket, Socket>();
  const socketOf = (msg: RelayMessage): WebSocket | undefined => {
    const u = users.get(msg.to);
    return u && (u.pcActive ? u.pc : u.mobile);
  };
  /** The frame to the socket the presence bit picks; false when the user has none. */
  const deliver = (msg: RelayMessage): boolean => {
    const ws = socketOf(msg);
    if (!ws) return false;
    if (relay.corked) cork.hold(sockets.get(ws));
    ws.send(JSON.stringify({ type: 'message', id: msg.id, data: msg.data, ts: Date.now() }));
    return true;
  };
  const relay: Relay = {
    port: 0,
    corked: false,
    durable: false,
    durableStats: log?.stats,
    accept(msg) {
      if (!relay.durable) return deliver(msg);
      if (log === undefined) throw new Error('a durable relay needs the file to append to (startRelay(durableFile))');
      if (socketOf(msg) === undefined) return false;
      log.append({ body: Buffer.from(JSON.stringify(msg)), done: () => void deliver(msg) });
      return true;
    },
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await log?.close();
    },
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== '/v1/messages') return void res.writeHead(404).end();
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const msg = JSON.parse(raw.toString()) as RelayMessage;
      const answer = (): void => {
        deliver(msg);
        const body = JSON.stringify({ id: msg.id, status: 'accepted' });
        res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
      };
      if (!relay.durable) return answer();
      if (log === undefined) return void res.writeHead(500).end('a durable relay needs the file to append to (startRelay(durableFile))');
      log.append({ body: raw, done: answer });
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
