import type { PushJob, PushOutcome } from './types.js';
import type { FcmCredentials } from './vendor-config.js';
import type { VendorSender } from './vendor.js';

/** Placeholder until the fcm sender lands (issue 3): reports failure, never success. */
export class FcmSender implements VendorSender {
  constructor(private readonly creds: FcmCredentials) {}

  async send(_job: PushJob): Promise<PushOutcome> {
    return { outcome: 'failed', reason: 'fcm sender is not available in this build' };
  }

  async close(): Promise<void> {}
}
