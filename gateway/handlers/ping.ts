import type { SessionContext } from './context.js';

/** Section 2 ping row: refresh the session (it is not stale) and answer pong. */
export function handlePing(ctx: SessionContext): void {
  ctx.publish({ type: 'touch', user: ctx.user, device: ctx.device, sessionId: ctx.sessionId, at: ctx.now() });
  ctx.send({ type: 'pong' });
}
