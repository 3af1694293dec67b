import { workerData } from 'piscina';
import type { Vendor } from '../protocol/index.js';
import { ApnsSender } from './apns.js';
import { FcmSender } from './fcm.js';
import { HmsSender } from './hms.js';
import type { PushJob, PushOutcome } from './types.js';
import { credentialsFor, type AppCredentials, type SenderConfig } from './vendor-config.js';
import type { VendorSender } from './vendor.js';
import { WebPushSender } from './webpush.js';

/**
 * The Piscina task: one batch of pushes in, one outcome per job out, in order. Vendor clients live at module
 * scope, one per (app, vendor), so HTTP/2 sessions and OAuth tokens stay open across tasks.
 */
const config = workerData as SenderConfig;
const clients = new Map<string, VendorSender>();

const FACTORIES: { [V in Vendor]: (creds: NonNullable<AppCredentials[V]>) => VendorSender } = {
  apns: (c) => new ApnsSender(c),
  fcm: (c) => new FcmSender(c),
  hms: (c) => new HmsSender(c),
  webpush: (c) => new WebPushSender(c, { allowedHosts: config.webpushAllowedHosts }),
};

export default async function sendBatch(jobs: PushJob[]): Promise<PushOutcome[]> {
  return Promise.all(jobs.map((job) => sendOne(job)));
}

async function sendOne(job: PushJob): Promise<PushOutcome> {
  const key = `${job.app ?? ''}\u0000${job.vendor}`;
  let client = clients.get(key);
  if (!client) {
    const found = credentialsFor(config, job.app, job.vendor);
    if (!found.ok) return { outcome: 'failed', reason: found.reason };
    client = (FACTORIES[job.vendor] as (c: unknown) => VendorSender)(found.creds);
    clients.set(key, client);
  }
  try {
    return await client.send(job);
  } catch (err) {
    // A sender bug, not a vendor answer: report it as a failure with its reason rather than losing the job.
    return { outcome: 'failed', reason: `${job.vendor} sender error: ${err instanceof Error ? err.message : String(err)}` };
  }
}
