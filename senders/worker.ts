import { workerData } from 'piscina';
import type { PushJob, PushOutcome } from './types.js';
import { missingCredentials, type SenderConfig } from './vendor-config.js';

/**
 * The Piscina task: one batch of pushes in, one outcome per job out, in order.
 * Vendor connections will live at module scope so they stay open across tasks.
 */
const config = workerData as SenderConfig;

export default async function sendBatch(jobs: PushJob[]): Promise<PushOutcome[]> {
  return Promise.all(jobs.map((job) => sendOne(job)));
}

async function sendOne(job: PushJob): Promise<PushOutcome> {
  const missing = missingCredentials(job.vendor, config);
  if (missing) return { outcome: 'failed', reason: missing };
  // Credentials are present but the vendor clients arrive with the vendor senders issue: say so, never fake success.
  return { outcome: 'failed', reason: `${job.vendor} sender is not available in this build` };
}
