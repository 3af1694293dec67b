import type { PushJob, PushOutcome } from './types.js';

/**
 * One vendor's client inside a sender worker. It is created once per (app, vendor) and kept for the life of the
 * worker, so its connections and OAuth tokens are reused across tasks. It never throws for a vendor answer:
 * every answer maps to a `PushOutcome` (ok, dead_token, retry with Retry-After, failed with the vendor's reason).
 */
export interface VendorSender {
  send(job: PushJob): Promise<PushOutcome>;
  close(): Promise<void>;
}

export { MAX_PAYLOAD_BYTES } from '../protocol/push-payload.js';
