import type { PushJob, PushOutcome } from './types.js';
import type { ApnsCredentials } from './vendor-config.js';
import type { VendorSender } from './vendor.js';

/** Placeholder until the apns sender lands (issue 3): reports failure, never success. */
export class ApnsSender implements VendorSender {
  constructor(private readonly creds: ApnsCredentials) {}

  async send(_job: PushJob): Promise<PushOutcome> {
    return { outcome: 'failed', reason: 'apns sender is not available in this build' };
  }

  async close(): Promise<void> {}
}
