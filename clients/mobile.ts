import { ClientError, shownValue } from './close-codes.js';
import { Emitter } from './emitter.js';
import { MOBILE_OSES, type ClientFrameV11, type ErrorFrame, type MobileOs, type MobileState, type Welcome } from './wire.js';

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
   * the server's code and message (`invalid_field: token must be …`, `store_failed: …`), never the token. Also
   * emitted, with a message starting `push token not sent:`, for a `register` this library did not send because the
   * server would refuse it for its shape (an `os` that is no mobile OS, a frame over 64 KiB).
   */
  registerRefused: (error: ClientError) => void;
}

/** The longest delay `setTimeout` keeps (2^31 - 1 ms); a longer one, or Infinity, fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** A frame of ours waiting for its answer; the gateway answers register and unregister frames in order. */
type Unanswered =
  | { type: 'register'; token: string }
  /** `queued`: sent while the client was not open, so it goes out with the next welcome (the client's queue). */
  | { type: 'unregister'; settle: (error?: ClientError) => void; queued: boolean };

/**
 * The error codes each of our frames may be answered with, from the gateway's handlers and decoder
 * (gateway/handlers/register.ts, unregister.ts, protocol/message.ts `readRegistration`; README "Error codes"):
 * - register: `invalid_field` (an `os` that is no mobile OS or not the JWT's, a token that does not fit its OS, an
 *   unknown `app`), `store_failed`, `frame_not_allowed` (a PC token);
 * - unregister: `store_failed`, `unknown_frame` (a server older than v1.1), `frame_not_allowed`.
 * An error frame with any other code answers some other frame (a `read` refused as `invalid_request`, say) and is not
 * taken as theirs. The frames this library sends are checked before they go (`SwitchboardClient.send`, `read`, and
 * the `os` below), so none of them draws one of these codes for its shape.
 */
const ANSWER_ERROR_CODES: Readonly<Record<Unanswered['type'], ReadonlySet<string>>> = {
  register: new Set(['invalid_field', 'store_failed', 'frame_not_allowed']),
  unregister: new Set(['store_failed', 'unknown_frame', 'frame_not_allowed']),
};

/**
 * A mobile app's side of section 2 on top of a client core: `foreground` / `background` from `lifecycle`, the push
 * token of `push` registered (`register` / `registered`), and `logOut()` (`unregister`). Events: `MobileEvents`.
 */
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
  /** Unsubscribes the token refresh listener (dropped at `logOut()`, before the rest). */
  private offRefresh?: () => void;
  private listening = false;
  /** Set when `logOut()` is called: from then on no token is registered, by a refresh, a welcome or `register()`. */
  private loggedOut = false;

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
    if (!this.push || this.loggedOut) return;
    this.offRefresh = this.push.onTokenRefresh((token) => this.register(token));
    const token = await this.push.getToken();
    this.register(token); // a logOut() while the token was fetched wins: register() then sends nothing
  }

  /**
   * Registers a push token now (also called on every refresh): sent when a session is open, else after the next
   * welcome. Does nothing once `logOut()` was called: a logged-out device must not get its token stored again.
   */
  register(token: string): void {
    if (this.loggedOut) return;
    this.token = token;
    this.registeredToken = undefined;
    this.sendRegister();
  }

  /**
   * Log-out: asks the server to forget this device's push token (`unregister`, PROTOCOL.md section 2), then stops the
   * client. From the call on, nothing registers a token again: a token not yet registered, a refresh, a `register()`
   * call and a reconnect's welcome send no `register` (one already sent is answered before the `unregister`, which
   * removes it: the gateway handles them in order).
   *
   * Needs a connection, but need not have one at the call: offline, the `unregister` is queued and goes out with the
   * next welcome, and it is sent again after a reconnect that came before its answer.
   *
   * @param timeoutMs how long to wait for the answer, in milliseconds, from the call (default 10000): a number
   *   from 0 to 2147483647 (the longest timer a platform keeps; about 24.8 days). The wait covers the time offline
   *   too: a connection that comes back within it sends the `unregister`.
   * @returns resolves on `unregistered`: the server no longer holds a token for this device.
   * @throws ClientError (a rejection) `invalid_argument` for a `timeoutMs` that is not such a number (NaN, negative,
   *   Infinity, a string): nothing is done, not logged out, the client keeps running. `unregister_refused` on the
   *   error frame that answers the `unregister` (its message carries the server's code and message: `store_failed`,
   *   or `unknown_frame` from a server older than v1.1);
   *   `connection_lost` when no answer came within `timeoutMs` (offline all along, or the answer lost): the token
   *   may then still be stored, and pushes may still reach the device; have the chat server remove the device
   *   (`DELETE /v1/users/{u}/devices/{d}`, section 3). The client is stopped in every case.
   */
  async logOut(timeoutMs = 10_000): Promise<void> {
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= MAX_TIMER_MS)) {
      throw new ClientError('invalid_argument', `logOut(timeoutMs): timeoutMs must be a number of milliseconds from 0 to ${MAX_TIMER_MS}, not ${shownValue(timeoutMs)}; not logged out`);
    }
    this.listen();
    this.loggedOut = true;
    this.offRefresh?.();
    this.offRefresh = undefined;
    this.token = this.registeredToken = undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => settle(new ClientError('connection_lost', `no answer to unregister within ${timeoutMs} ms`)), timeoutMs);
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
      this.close();
      this.client.stop();
    }
  }

  /** Stops following the lifecycle, token refreshes and answers (the client keeps running). */
  close(): void {
    this.offRefresh?.();
    this.offRefresh = undefined;
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
      if (head === undefined || !ANSWER_ERROR_CODES[head.type].has(e.code)) return;
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

  /**
   * Sends the current token's `register` when a session is open. A frame the server would refuse for its shape (an
   * `os` that is no mobile OS; a frame over 64 KiB, which `send` throws for) is not sent: `registerRefused` tells it.
   */
  private sendRegister(): void {
    if (this.loggedOut || !this.push || !this.token || this.client.state !== 'open') return;
    if (!MOBILE_OSES.has(this.push.os)) {
      this.emit('registerRefused', new ClientError('register_refused', `push token not sent: os must be one of ${[...MOBILE_OSES].join(', ')} (PROTOCOL.md section 2)`));
      return;
    }
    try {
      this.client.send({ type: 'register', os: this.push.os, token: this.token, ...(this.push.app ? { app: this.push.app } : {}) });
    } catch (e) {
      this.emit('registerRefused', new ClientError('register_refused', `push token not sent: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    this.unanswered.push({ type: 'register', token: this.token });
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
