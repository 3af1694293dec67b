import type { ClientFrame } from '../../protocol/index.js';
import type { SessionContext } from './context.js';

type AckFrame = Extract<ClientFrame, { type: 'ack' }>;

/** Section 2 ack row / section 4 ack timeout: the owner stops the fallback timer for this delivery. */
export function handleAck(ctx: SessionContext, frame: AckFrame): void {
  ctx.publish({ type: 'ack', user: ctx.user, device: ctx.device, sessionId: ctx.sessionId, id: frame.id, at: ctx.now() });
}
