import { ClientError } from './close-codes.js';
import { Emitter } from './emitter.js';
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

/** Events of a `MobileSession`. */
export interface MobileEvents {
  /** The server stored the push token last registered (`registered` answered its `register` frame). */
  registered: (ev: { os: MobileOs }) => void;
  /**
   * The server refused a `register` frame (an error frame in its place, section 2): the token is not stored, and
   * pushes will not reach this device until a good one is. `error.code` is `register_refused`; its message carries
   * the server's code and message (`invalid_field: token must be …`, `store_failed: …`), never the token.
   */
  registerRefused: (error: ClientError) => void;
}

/** A frame of ours waiting for its answer; the gateway answers register and unregister frames in order. */
type Unanswered =
  | { type: 'register'; token: string }
  /** `queued`: sent while the client was not open, so it goes out with the next welcome (the client's queue). */
  | { type: 'unregister'; settle: (error?: ClientError) => void; queued: boolean };

/**
 * Error codes a `register` or `unregister` frame may be answered with (the gateway's token rules, its store, a
 * server without v1.1's `unregister`): an error frame with another code answers some other frame and is not taken as
 * theirs (a refused `read`, say, sent just before).
 */
const REGISTRATION_ERRORS: ReadonlySet<string> = new Set(['invalid_field', 'invalid_request', 'store_failed', 'unknown_frame', 'internal']);

export class MobileSession extends Emitter<MobileEvents> {
  private token?: string;
  private registeredToken?: string;
  /**
   * Our register and unregister frames sent on this connection and not answered yet, oldest first: the gateway
   * answers them in the order they came (`registered`, `unregistered` or an error frame, README "Push tokens"), so
   * each answer belongs to the oldest (a newer refresh may still be pending).
   */
  private unanswered: Unanswered[] = [];
  private readonly offs: (() => void)[] = [];
  private listening = false;

  constructor(private readonly client: MobileSink, private readonly lifecycle: AppLifecycle, private readonly push?: PushTokenSource) {
    super();
  }

  /**
   * Call at launch: presence follows the lifecycle; the push token is fetched and its `register` sent (again on every
   * launch). Resolves once it is sent or queued for the next welcome, not when it is stored: the `registered` and
   * `registerRefused` events tell that.
   */
  async start(): Promise<void> {
    this.listen();
    this.client.setPresence({ state: this.lifecycle.current() });
    this.offs.push(this.lifecycle.onChange((state) => this.client.setPresence({ state })));
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
   * rejects (`unregister_refused`) on the error frame that answers the `unregister`, or (`connection_lost`) after
   * `timeoutMs` (default 10000) — the client is stopped either way. An earlier `register`'s answer, even a refusal,
   * is not taken for the unregister's.
   */
  async logOut(timeoutMs = 10_000): Promise<void> {
    this.listen();
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => settle(new ClientError('connection_lost', 'no answer to unregister in time')), timeoutMs);
        const settle = (error?: ClientError) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        };
        // Sent now when open, else after the next welcome (the client queues it); a drop before the answer sends it again.
        this.unanswered.push({ type: 'unregister', settle, queued: this.client.state !== 'open' });
        this.client.send({ type: 'unregister' });
      });
    } finally {
      this.token = this.registeredToken = undefined;
      this.close();
      this.client.stop();
    }
  }

  /** Stops following the lifecycle, token refreshes and answers (the client keeps running). */
  close(): void {
    for (const off of this.offs.splice(0)) off();
    this.listening = false;
  }

  private listen(): void {
    if (this.listening) return;
    this.listening = true;
    this.offs.push(this.client.on('registered', () => {
      const head = this.take('register');
      if (head === undefined) return;
      this.registeredToken = head.token;
      if (this.push) this.emit('registered', { os: this.push.os });
    }));
    this.offs.push(this.client.on('unregistered', () => this.take('unregister')?.settle()));
    this.offs.push(this.client.on('serverError', (e) => {
      const head = this.unanswered[0];
      if (head === undefined || !REGISTRATION_ERRORS.has(e.code)) return;
      this.unanswered.shift();
      if (head.type === 'unregister') head.settle(new ClientError('unregister_refused', `unregister refused: ${e.code}: ${e.message}`));
      else this.emit('registerRefused', new ClientError('register_refused', `push token not stored: ${e.code}: ${e.message}`));
    }));
    // Sent when a session is open; otherwise (and when a drop came before the answer) after the next welcome.
    this.offs.push(this.client.on('welcome', () => {
      // A new connection: answers to frames sent on the old one never come. An unregister the client queued went
      // out just before this welcome (the client sends its queue first); one lost with the old connection goes out
      // again (the frame is idempotent), after the register below if one is due: the order of the frames sent.
      const unregisters = this.unanswered.filter((u): u is Extract<Unanswered, { type: 'unregister' }> => u.type === 'unregister');
      this.unanswered = unregisters.filter((u) => u.queued);
      if (this.token && this.token !== this.registeredToken) this.sendRegister();
      for (const u of unregisters) {
        if (u.queued) {
          u.queued = false;
          continue;
        }
        this.unanswered.push(u);
        this.client.send({ type: 'unregister' });
      }
    }));
  }

  /** The oldest unanswered frame, if it is of `type` (answers come in order; anything else is not ours). */
  private take<T extends Unanswered['type']>(type: T): Extract<Unanswered, { type: T }> | undefined {
    if (this.unanswered[0]?.type !== type) return undefined;
    return this.unanswered.shift() as Extract<Unanswered, { type: T }>;
  }

  private sendRegister(): void {
    if (!this.push || !this.token || this.client.state !== 'open') return;
    this.unanswered.push({ type: 'register', token: this.token });
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
