import type { Ledger } from './cluster.js';
import type { NodeProcess } from './node-process.js';
import { TestClient, type Claims } from './ws-client.js';

/**
 * A client that behaves like a real app with a heartbeat (PROTOCOL.md section 2: `{"type":"ping"}` is answered
 * `{"type":"pong"}`): it pings every `pingMs`, and when nothing arrived for `staleMs` (a frozen gateway) or the socket
 * closed (a dead gateway), it drops the socket and opens a new session on another live gateway. A PC says `active`
 * again on every new session. Every `message` frame is acked and counted in the ledger under its user.
 */
export interface HeartbeatOptions {
  /** Gateways a reconnect may pick from (the test knows which are alive; a real client would try its list in turn). */
  gateways: () => NodeProcess[];
  ledger: Ledger;
  /** Ping interval, ms. Default 500. */
  pingMs?: number;
  /** Silence after which the socket counts as stalled, ms. Default 2000. */
  staleMs?: number;
  /** Wait before opening the new session, ms (an app on a slow network or backing off). Default 0. */
  reconnectDelayMs?: number;
}

export class HeartbeatClient {
  /** Node the current session is on. */
  node: NodeProcess;
  /** Sessions opened after the first one. */
  reconnects = 0;
  /** Every `message` id this device received, duplicates included. */
  readonly received: string[] = [];
  private client?: TestClient;
  private lastFrameAt = Date.now();
  private timer?: NodeJS.Timeout;
  private closed = false;
  private reconnecting = false;
  private nextPick = 0;

  private constructor(readonly claims: Claims, first: NodeProcess, private readonly opts: HeartbeatOptions) {
    this.node = first;
  }

  /** Opens the first session on `node`; resolves after its welcome (and, for a PC, after `active` was sent). */
  static async open(node: NodeProcess, claims: Claims, opts: HeartbeatOptions): Promise<HeartbeatClient> {
    const c = new HeartbeatClient(claims, node, opts);
    await c.connect(node);
    c.timer = setInterval(() => c.beat(), opts.pingMs ?? 500);
    return c;
  }

  /** True while the current session is on `node`. */
  on(node: NodeProcess): boolean {
    return !this.reconnecting && this.node === node;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.client?.ws.terminate();
  }

  private async connect(node: NodeProcess): Promise<void> {
    const client = await TestClient.session(node.wsUrl, node.jwtSecret, this.claims);
    if (this.closed) return client.ws.terminate(); // closed by the test while this session opened
    this.client = client;
    this.node = node;
    this.lastFrameAt = Date.now();
    client.onEachFrame((f) => {
      if (client !== this.client) return;
      this.lastFrameAt = Date.now();
      if (f.type !== 'message') return;
      this.received.push(f.id);
      this.opts.ledger.arrive(f.id);
      client.send({ type: 'ack', id: f.id });
    });
    client.ws.on('close', () => {
      if (client === this.client) void this.reconnect();
    });
    if (this.claims.kind === 'pc') client.send({ type: 'presence', state: 'active' });
  }

  private beat(): void {
    if (this.closed || this.reconnecting || !this.client) return;
    if (Date.now() - this.lastFrameAt > (this.opts.staleMs ?? 2000)) {
      void this.reconnect();
      return;
    }
    if (this.client.ws.readyState === this.client.ws.OPEN) this.client.send({ type: 'ping' });
  }

  /** Drops the current socket and opens a session on the next live gateway other than the stalled one. */
  private async reconnect(): Promise<void> {
    if (this.closed || this.reconnecting) return;
    this.reconnecting = true;
    const stalled = this.node;
    const old = this.client;
    this.client = undefined;
    old?.ws.terminate();
    try {
      if (this.opts.reconnectDelayMs) await new Promise((r) => setTimeout(r, this.opts.reconnectDelayMs));
      for (let attempt = 0; !this.closed; attempt++) {
        const live = this.opts.gateways();
        const others = live.filter((n) => n !== stalled);
        const choices = others.length > 0 ? others : live;
        const pick = choices[this.nextPick++ % Math.max(1, choices.length)];
        try {
          if (!pick) throw new Error('no live gateway');
          await this.connect(pick);
          this.reconnects++;
          return;
        } catch {
          await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
        }
      }
    } finally {
      this.reconnecting = false;
    }
  }
}
