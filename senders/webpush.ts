import type { PushJob, PushOutcome } from './types.js';
import type { WebPushCredentials } from './vendor-config.js';
import type { VendorSender } from './vendor.js';

/** Placeholder until the webpush sender lands (issue 3): reports failure, never success. */
export class WebPushSender implements VendorSender {
  constructor(private readonly creds: WebPushCredentials) {}

  async send(_job: PushJob): Promise<PushOutcome> {
    return { outcome: 'failed', reason: 'webpush sender is not available in this build' };
  }

  async close(): Promise<void> {}
}
