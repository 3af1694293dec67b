import { SwitchboardError } from '../../protocol/index.js';
import type { SessionContext } from './context.js';

/**
 * Section 2 unregister row (v1.1, log-out): forget this device's push token, then answer `unregistered`. The
 * registry reports the removal (`token_removed`, reason `unregistered`) to the owner and to chat servers; the
 * device and its live session stay. A device without a token is answered the same (the frame is idempotent).
 */
export async function handleUnregister(ctx: SessionContext): Promise<void> {
  try {
    const rec = (await ctx.registry.list(ctx.user)).find((d) => d.device === ctx.device);
    if (rec?.token !== undefined) await ctx.registry.clearToken(ctx.user, ctx.device, rec.token, 'unregistered');
  } catch (e) {
    ctx.reject(new SwitchboardError('store_failed', 'push token not removed', { cause: e }));
    return;
  }
  ctx.publish({ type: 'touch', user: ctx.user, device: ctx.device, sessionId: ctx.sessionId, at: ctx.now() });
  ctx.send({ type: 'unregistered' });
}
