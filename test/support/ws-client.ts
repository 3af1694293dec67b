import { SignJWT } from 'jose';
import WebSocket from 'ws';

export interface Claims {
  sub: string;
  dev: string;
  kind: 'pc' | 'mobile';
  os?: 'ios' | 'android' | 'harmony' | 'web';
}

/** An HS256 client token as section 2 describes; `expiresIn` in seconds (negative = already expired). */
export async function signToken(secret: string, claims: Claims, expiresIn = 3600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now).setExpirationTime(now + expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

export interface Closed {
  code: number;
  reason: string;
}

/**
 * A real WebSocket client over loopback that queues every frame it receives, so a test can await
 * the next frame matching a condition instead of sleeping.
 */
export class TestClient {
  readonly frames: any[] = [];
  readonly closed: Promise<Closed>;
  private waiters: { match: (f: any) => boolean; resolve: (f: any) => void }[] = [];
  private readonly listeners: ((f: any) => void)[] = [];
  private consumed = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const frame = isBinary ? { binary: data } : JSON.parse(data.toString());
      this.frames.push(frame);
      for (const l of this.listeners) l(frame);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(frame)) return true;
        w.resolve(frame);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => {
      /* surfaced through `closed` */
    });
  }

  static connect(url: string): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  /** Connects, says hello with a fresh token, and awaits the welcome. */
  static async session(url: string, secret: string, claims: Claims): Promise<TestClient> {
    const client = await TestClient.connect(url);
    client.send({ type: 'hello', token: await signToken(secret, claims) });
    const welcome = await client.next((f) => f.type === 'welcome' || f.type === 'error');
    if (welcome.type !== 'welcome') throw new Error(`no welcome: ${JSON.stringify(welcome)}`);
    return client;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /**
   * Calls `handler` with every frame received so far and not taken by `next`, then with each later one, in order.
   * Frames that came in the same socket read as the welcome arrive before a listener attached after `session()`
   * (a node replaying held messages right after the welcome, a slow reader under load): this way none is missed.
   */
  onEachFrame(handler: (f: any) => void): void {
    for (const f of this.frames) handler(f);
    this.listeners.push(handler);
  }

  /** The first frame received (already or later) that matches and has not been returned by `next` before. */
  next(match: (f: any) => boolean = () => true, timeoutMs = 5000): Promise<any> {
    for (let i = this.consumed; i < this.frames.length; i++) {
      if (match(this.frames[i])) {
        const [f] = this.frames.splice(i, 1);
        return Promise.resolve(f);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (f) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(f), 1);
          resolve(f);
        },
      });
    });
  }

  /** Awaits the next `message` frame with this id. */
  message(id: string, timeoutMs = 5000): Promise<any> {
    return this.next((f) => f.type === 'message' && f.id === id, timeoutMs);
  }

  /** True when a `message` frame with this id was received (and not yet taken by `next`). */
  hasMessage(id: string): boolean {
    return this.frames.some((f) => f.type === 'message' && f.id === id);
  }

  close(): void {
    this.ws.close();
  }
}

/** Awaits `cond()` becoming true, polling on the event loop (no fixed sleep). */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
