import WebSocket from 'ws';
import { signToken } from '../test/support/ws-client.js';

/**
 * The clients of the soak (bench/soak.ts): per user a PC and a phone on real WebSockets. The phone stays in the
 * foreground and acks; the PC acks and its presence is churned between active and inactive (idle, screen locked).
 * Forced disconnects terminate a random socket abruptly (no close frame, as a dropped network does); it reconnects
 * after `reconnectMs`. Every message id received is counted, so lost and duplicated can be told apart.
 */

export type Kind = 'pc' | 'mobile';

interface Slot {
  user: string;
  kind: Kind;
  ws?: WebSocket;
  /** True from the welcome until the socket is closed. */
  open: boolean;
  pcActive: boolean;
}

export class SoakClients {
  /** Times each message id was received, over every socket. */
  readonly received = new Map<string, number>();
  /** Epoch ms of the forced disconnects per user (to tell messages sent around one from the rest). */
  readonly disconnectsAt = new Map<string, number[]>();
  readonly closes: Record<string, number> = {};
  forcedDisconnects = 0;
  private readonly slots: Slot[] = [];
  private stopped = false;

  constructor(private readonly url: string, private readonly jwtSecret: string, readonly users: string[], private readonly reconnectMs: number) {
    for (const user of users) for (const kind of ['pc', 'mobile'] as const) this.slots.push({ user, kind, open: false, pcActive: true });
  }

  async connectAll(): Promise<void> {
    for (let i = 0; i < this.slots.length; i += 100) await Promise.all(this.slots.slice(i, i + 100).map((s) => this.connect(s)));
  }

  /** Flips the PC presence of a random user (active <-> idle / screen locked). */
  churnOne(): void {
    const pcs = this.slots.filter((s) => s.kind === 'pc' && s.open);
    const s = pcs[Math.floor(Math.random() * pcs.length)];
    if (s === undefined) return;
    s.pcActive = !s.pcActive;
    s.ws!.send(JSON.stringify(this.presence(s)));
  }

  /** Terminates a random open socket; it reconnects after `reconnectMs`. */
  disconnectOne(): void {
    const open = this.slots.filter((s) => s.open);
    const s = open[Math.floor(Math.random() * open.length)];
    if (s === undefined) return;
    this.forcedDisconnects++;
    const at = this.disconnectsAt.get(s.user) ?? [];
    at.push(Date.now());
    this.disconnectsAt.set(s.user, at);
    s.open = false;
    s.ws!.terminate();
    setTimeout(() => void this.connect(s).catch(() => undefined), this.reconnectMs);
  }

  /** Sockets open right now. */
  openSockets(): number {
    return this.slots.filter((s) => s.open).length;
  }

  close(): void {
    this.stopped = true;
    for (const s of this.slots) s.ws?.terminate();
  }

  private presence(s: Slot): object {
    if (s.kind === 'mobile') return { type: 'presence', state: 'foreground' };
    if (s.pcActive) return { type: 'presence', state: 'active' };
    return { type: 'presence', state: 'inactive', reason: Math.random() < 0.5 ? 'idle' : 'screen_locked' };
  }

  private async connect(s: Slot): Promise<void> {
    if (this.stopped) return;
    const claims = s.kind === 'pc' ? ({ sub: s.user, dev: 'pc1', kind: 'pc' } as const) : ({ sub: s.user, dev: 'phone1', kind: 'mobile', os: 'android' } as const);
    const token = await signToken(this.jwtSecret, claims);
    const ws = new WebSocket(this.url, { perMessageDeflate: false });
    s.ws = ws;
    ws.on('close', (code) => {
      this.closes[code] = (this.closes[code] ?? 0) + 1;
      if (s.ws === ws) s.open = false;
    });
    ws.on('error', () => undefined);
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString());
      if (f.type === 'welcome') {
        s.open = true;
        ws.send(JSON.stringify(this.presence(s)));
      } else if (f.type === 'message') {
        ws.send(`{"type":"ack","id":${JSON.stringify(f.id)}}`);
        this.received.set(f.id, (this.received.get(f.id) ?? 0) + 1);
      }
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        ws.send(JSON.stringify({ type: 'hello', token }));
        resolve();
      });
      ws.once('error', reject);
    });
  }
}
