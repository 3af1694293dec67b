import type { ChatMessage, Vendor } from './message.js';

/**
 * The port between the user actors and the vendor senders: a push job crosses a worker-thread boundary (Piscina),
 * so it is a wire type of its own. Implemented by senders/pool.ts; actors only see this interface.
 */

/** One offline push, handed from a user actor to the sender pool (claim 1/6: OS type + device token). */
export interface PushJob {
  /** Unique per push attempt chain: `${message.id}:${device}`. */
  jobId: string;
  user: string;
  device: string;
  vendor: Vendor;
  token: string;
  app?: string;
  message: ChatMessage;
  /** Section 4 read sync: the user's unread count, sent as the badge of an alert push (APNs `aps.badge`). */
  badge?: number;
  /**
   * Present on a silent clear push (read sync): no alert; the app removes these messages' notifications and sets
   * `badge`. APNs: background push, FCM and Push Kit: data message, Web Push: a payload for the service worker.
   * `message` is then only a stand-in carrying the TTL.
   */
  clear?: { ids: string[] };
  /**
   * Quiet hours (PROTOCOL.md section 4): show the notification without sound and at the lowest interruption level
   * (APNs `interruption-level: passive`, FCM `PRIORITY_MIN`, Push Kit importance `LOW`, Web Push `silent`).
   */
  silent?: true;
}

/** Vendor outcomes are data, never thrown (STYLE.md, errors). */
export type PushOutcome =
  | { outcome: 'ok'; vendorId?: string }
  | { outcome: 'dead_token'; reason: string }
  | { outcome: 'retry'; reason: string; retryAfterMs?: number }
  /**
   * `config`: the vendor refused our credentials (APNs 403 InvalidProviderToken): every push of that app and vendor
   * will fail alike until an operator fixes the configuration, so the pool logs it (the reason names key id and team
   * id, never a key) and never retries it.
   */
  | { outcome: 'failed'; reason: string; config?: true };

/** Where the actors hand their offline pushes: the Piscina pool in production, a recorder in tests. */
export interface PushSink {
  push(job: PushJob): Promise<PushOutcome>;
  close(): Promise<void>;
}
