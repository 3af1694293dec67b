import type { ClientFrame } from '../../protocol/index.js';
import type { SessionContext } from './context.js';

type ReadFrame = Extract<ClientFrame, { type: 'read' }>;

/**
 * Section 2 read row / section 4 read sync: the owner cancels these messages' pending pushes, stops holding them,
 * lowers the badge, and tells the user's other sessions and offline phones (`clear`).
 */
export function handleRead(ctx: SessionContext, frame: ReadFrame): void {
  ctx.publish({ type: 'read', user: ctx.user, ids: frame.ids, device: ctx.device, sessionId: ctx.sessionId, at: ctx.now() });
}
