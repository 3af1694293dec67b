import type { ClearFrame, GatewayMessage } from '../protocol/index.js';
import { MAX_READ_IDS, VENDOR_OF } from '../protocol/index.js';
import type { PushJob } from '../protocol/push.js';
import type { DecideOptions } from './decide.js';
import { policyOf } from './policy.js';
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

/** One `read` of a batch the mailbox ran together (UserActor `reads`): its ids and the session that sent it, if any. */
export interface ReadBy {
  ids: readonly string[];
  sessionId?: string;
}

/**
 * `clearFrames` for reads the mailbox ran together: each session gets the ids the other readers read (never its own,
 * as with one read), in frames of at most MAX_READ_IDS ids, so a frame is never larger than one read's would be.
 */
export function clearFramesOfReads(state: UserState, reads: readonly ReadBy[], badge: number, user: string): { node: string; msg: GatewayMessage }[] {
  if (reads.length === 1) return clearFrames(state, [...reads[0].ids], badge, reads[0].sessionId, user);
  const out: { node: string; msg: GatewayMessage }[] = [];
  const add = (node: string, sessionId: string): void => {
    const ids = new Set<string>();
    for (const r of reads) if (r.sessionId !== sessionId) for (const id of r.ids) ids.add(id);
    const all = [...ids];
    for (let i = 0; i < all.length; i += MAX_READ_IDS) {
      out.push({ node, msg: { type: 'frame', sessionId, frame: { type: 'clear', ids: all.slice(i, i + MAX_READ_IDS), badge }, user } });
    }
  };
  for (const pc of state.pcs ?? []) add(pc.node, pc.sessionId);
  for (const m of state.mobiles ?? []) if (m.session) add(m.session.node, m.session.sessionId);
  return out;
}

/**
 * Silent clear pushes for phones that are offline (no foreground session) and hold a push token of a vendor with a
 * clear push (every vendor: APNs background push, FCM and Push Kit data message, Web Push for the service worker)
 * that has credentials (`canPush`). `now` makes the job id unique; the message is a stand-in for the pool's TTL bound.
 * None for a user whose policy is `"mobile":"never"` (section 4: `"never"` never uses vendor pushes), judged when the
 * round goes out, so a round that waited out CLEAR_PUSH_INTERVAL_MS follows a policy changed meanwhile.
 */
export function clearPushJobs(state: UserState, user: string, ids: string[], badge: number, now: number, canPush?: DecideOptions['canPush']): PushJob[] {
  const jobs: PushJob[] = [];
  if (policyOf(state.policy).mobile === 'never') return jobs;
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
