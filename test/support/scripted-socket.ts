import type { WebSocketLike } from '../../clients/client.js';

/**
 * A WebSocket the client core opens in unit tests (`WebSocket: ScriptedSocket`), scripted from the server's side:
 * what the client sent is in `sent` (parsed), and the test opens it, feeds it frames and closes it. Every socket made
 * is in `ScriptedSocket.all` (reset it before each test).
 */
export class ScriptedSocket implements WebSocketLike {
  static all: ScriptedSocket[] = [];
  readyState = 0;
  /** The frames the client sent, parsed. */
  sent: any[] = [];
  /** What the client's own `close()` passed. */
  closedWith?: { code?: number; reason?: string };
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number, reason?: string) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }
  // The server's side of the script:
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  /** Section 2's `welcome`, of a PC session unless `extra` says otherwise (`{ kind: 'mobile' }`). */
  welcome(extra: object = {}) {
    this.frame({ type: 'welcome', user: 'u', device: 'd', kind: 'pc', heartbeatMs: 10_000, idleAfterMs: 60_000, ...extra });
  }
  serverClose(code: number, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  types(): string[] {
    return this.sent.map((f) => f.type);
  }
}
