import type { ClearFrame, GatewayMessage } from '../protocol/index.js';
import { VENDOR_OF } from '../protocol/index.js';
import type { PushJob } from '../protocol/push.js';
import type { DecideOptions } from './decide.js';
import type { UserState } from './user-state.js';

/**
 * Section 4 read sync, as data: who gets a `clear` frame and which phones get a silent clear push. Pure functions;
 * the user actor publishes and pushes what they return.
 */

/** A clear push never outlives this (Apple and Google drop stale background pushes anyway). */
export const CLEAR_PUSH_TTL_SECONDS = 3600;

/** `clear` frames for every connected session of the user except the one that read (`readerSession`). */
export function clearFrames(state: UserState, ids: string[], badge: number, readerSession: string | undefined, user: string): { node: string; msg: GatewayMessage }[] {
  const frame: ClearFrame = { type: 'clear', ids, badge };
  const out: { node: string; msg: GatewayMessage }[] = [];
  const add = (node: string, sessionId: string): void => {
    if (sessionId !== readerSession) out.push({ node, msg: { type: 'frame', sessionId, frame, user } });
  };
  for (const pc of state.pcs ?? []) add(pc.node, pc.sessionId);
  for (const m of state.mobiles ?? []) if (m.session) add(m.session.node, m.session.sessionId);
  return out;
}

/**
 * Silent clear pushes for phones that are offline (no foreground session) and hold a push token of a vendor with a
 * clear push (every vendor: APNs background push, FCM and Push Kit data message, Web Push for the service worker)
 * that has credentials (`canPush`). `now` makes the job id unique; the message is a stand-in for the pool's TTL bound.
 */
export function clearPushJobs(state: UserState, user: string, ids: string[], badge: number, now: number, canPush?: DecideOptions['canPush']): PushJob[] {
  const jobs: PushJob[] = [];
  for (const m of state.mobiles ?? []) {
    if (m.session?.foreground || m.token === undefined) continue;
    const vendor = VENDOR_OF[m.os];
    if (canPush && !canPush(vendor, m.app)) continue; // section 4: no credentials, not reachable by push
    const job: PushJob = {
      jobId: `clear:${now}:${m.device}`, user, device: m.device, vendor, token: m.token,
      message: { id: `clear:${now}`, to: user, acceptedAt: now, ttlSeconds: CLEAR_PUSH_TTL_SECONDS },
      clear: { ids }, badge,
    };
    if (m.app !== undefined) job.app = m.app;
    jobs.push(job);
  }
  return jobs;
}
