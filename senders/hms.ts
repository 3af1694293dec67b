import type { PushJob, PushOutcome } from './types.js';
import type { HmsCredentials } from './vendor-config.js';
import type { VendorSender } from './vendor.js';

/** Placeholder until the hms sender lands (issue 3): reports failure, never success. */
export class HmsSender implements VendorSender {
  constructor(private readonly creds: HmsCredentials) {}

  async send(_job: PushJob): Promise<PushOutcome> {
    return { outcome: 'failed', reason: 'hms sender is not available in this build' };
  }

  async close(): Promise<void> {}
}
