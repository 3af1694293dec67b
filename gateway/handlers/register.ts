import { SwitchboardError, type ClientFrame } from '../../protocol/index.js';
import type { SessionContext } from './context.js';

type RegisterFrame = Extract<ClientFrame, { type: 'register' }>;

/**
 * Section 2 register row: store this mobile's vendor push token durably, tell the owner, then answer
 * `registered`. The answer waits for the durable write so a client can trust it.
 */
export async function handleRegister(ctx: SessionContext, frame: RegisterFrame): Promise<void> {
  const reg = frame.app === undefined ? { os: frame.os, token: frame.token } : { os: frame.os, token: frame.token, app: frame.app };
  try {
    await ctx.registry.put(ctx.user, ctx.device, reg);
  } catch (e) {
    ctx.reject(new SwitchboardError('store_failed', 'push token not stored', { cause: e }));
    return;
  }
  ctx.publish({ type: 'device_put', user: ctx.user, device: ctx.device, ...reg });
  // Section 2: any JSON frame refreshes the session; device_put names no session, so touch it too.
  ctx.publish({ type: 'touch', user: ctx.user, device: ctx.device, sessionId: ctx.sessionId, at: ctx.now() });
  ctx.send({ type: 'registered' });
}
