import { ClientError } from './close-codes.js';
import type { ClientFrameV11, ErrorFrame, MobileOs, MobileState, Welcome } from './wire.js';

/**
 * Mobile client core (PROTOCOL.md section 2, mobile rows): presence from the app lifecycle only (never from a push
 * or background-sync handler: those run while the app is in the background), the push token registered on every
 * launch and every refresh, `unregister` on log-out. Works for React Native and for web apps (`os: "web"`).
 */

/** Foreground/background from the app's lifecycle (React Native `AppState`, the page's visibility, …). */
export interface AppLifecycle {
  current(): MobileState;
  onChange(listener: (state: MobileState) => void): () => void;
}

/**
 * The device's vendor push token: APNs device token (hex), FCM registration token (`getToken` / `onNewToken`),
 * HMS token, or for `web` the PushSubscription JSON string (`pushsubscriptionchange` is its refresh).
 */
export interface PushTokenSource {
  os: MobileOs;
  /** A configured app name when the server serves several apps (`SWITCHBOARD_APPS_FILE`). */
  app?: string;
  getToken(): Promise<string>;
  onTokenRefresh(listener: (token: string) => void): () => void;
}

/** What the mobile core needs from the client core (`SwitchboardClient` fits). */
export interface MobileSink {
  /** `open` while a session is open (`SwitchboardClient.state`). */
  readonly state: string;
  setPresence(presence: { state: MobileState }): void;
  send(frame: ClientFrameV11): void;
  stop(): void;
  on(event: 'welcome', listener: (w: Welcome) => void): () => void;
  on(event: 'registered' | 'unregistered', listener: (f: { type: string }) => void): () => void;
  on(event: 'serverError', listener: (e: ErrorFrame) => void): () => void;
}

export class MobileSession {
  private token?: string;
  private registeredToken?: string;
  /**
   * Tokens of the register frames sent on this connection and not answered yet, oldest first: the gateway answers
   * register frames in the order they came, so `registered` stores the oldest (a newer refresh is still pending).
   */
  private unanswered: string[] = [];
  private readonly offs: (() => void)[] = [];

  constructor(private readonly client: MobileSink, private readonly lifecycle: AppLifecycle, private readonly push?: PushTokenSource) {}

  /** Call at launch: presence follows the lifecycle; the push token is fetched and registered (again on every launch). */
  async start(): Promise<void> {
    this.client.setPresence({ state: this.lifecycle.current() });
    this.offs.push(this.lifecycle.onChange((state) => this.client.setPresence({ state })));
    this.offs.push(this.client.on('registered', () => {
      const token = this.unanswered.shift();
      if (token !== undefined) this.registeredToken = token;
    }));
    // Sent when a session is open; otherwise (and when a drop came before the answer) after the next welcome.
    this.offs.push(this.client.on('welcome', () => {
      this.unanswered = []; // a new connection: answers to frames sent on the old one never come
      if (this.token && this.token !== this.registeredToken) this.sendRegister();
    }));
    if (!this.push) return;
    this.offs.push(this.push.onTokenRefresh((token) => this.register(token)));
    this.register(await this.push.getToken());
  }

  /** Registers a push token now (also called on every refresh). */
  register(token: string): void {
    this.token = token;
    this.registeredToken = undefined;
    this.sendRegister();
  }

  /**
   * Log-out: asks the server to forget this device's push token, then stops the client. Resolves on `unregistered`;
   * rejects on an error frame or after `timeoutMs` (default 10000) — the client is stopped either way.
   */
  async logOut(timeoutMs = 10_000): Promise<void> {
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => done(new ClientError('connection_lost', 'no answer to unregister in time')), timeoutMs);
        const offOk = this.client.on('unregistered', () => done());
        const offErr = this.client.on('serverError', (e) => done(new ClientError('protocol_violation', `unregister refused: ${e.code}: ${e.message}`)));
        const done = (err?: Error) => {
          clearTimeout(timer);
          offOk();
          offErr();
          if (err) reject(err);
          else resolve();
        };
        this.client.send({ type: 'unregister' });
      });
    } finally {
      this.token = this.registeredToken = undefined;
      this.close();
      this.client.stop();
    }
  }

  /** Stops following the lifecycle and token refreshes (the client keeps running). */
  close(): void {
    for (const off of this.offs.splice(0)) off();
  }

  private sendRegister(): void {
    if (!this.push || !this.token || this.client.state !== 'open') return;
    this.unanswered.push(this.token);
    this.client.send({ type: 'register', os: this.push.os, token: this.token, ...(this.push.app ? { app: this.push.app } : {}) });
  }
}

/** React Native's `AppState`: `active` is foreground; `background` and `inactive` (iOS app switcher) are not. */
export function reactNativeLifecycle(AppState: {
  currentState: string | null;
  addEventListener(type: 'change', listener: (state: string) => void): { remove(): void };
}): AppLifecycle {
  const map = (s: string | null): MobileState => (s === 'active' ? 'foreground' : 'background');
  return {
    current: () => map(AppState.currentState),
    onChange(listener) {
      const sub = AppState.addEventListener('change', (s) => listener(map(s)));
      return () => sub.remove();
    },
  };
}

/** A web app (PWA): the page's visibility is its lifecycle. */
export function pageLifecycle(doc: {
  visibilityState: string;
  addEventListener(type: 'visibilitychange', l: () => void): void;
  removeEventListener(type: 'visibilitychange', l: () => void): void;
}): AppLifecycle {
  const map = (): MobileState => (doc.visibilityState === 'visible' ? 'foreground' : 'background');
  return {
    current: map,
    onChange(listener) {
      const l = () => listener(map());
      doc.addEventListener('visibilitychange', l);
      return () => doc.removeEventListener('visibilitychange', l);
    },
  };
}
