import { SwitchboardError, type ClientFrame } from '../../protocol/index.js';
import type { SessionContext } from './context.js';
import { checkRegistration } from '../registration-rules.js';

type RegisterFrame = Extract<ClientFrame, { type: 'register' }>;

/**
 * Section 2 register row: store this mobile's vendor push token durably, tell the owner, then answer
 * `registered`. The answer waits for the durable write so a client can trust it.
 */
export async function handleRegister(ctx: SessionContext, frame: RegisterFrame): Promise<void> {
  const reg = frame.app === undefined ? { os: frame.os, token: frame.token } : { os: frame.os, token: frame.token, app: frame.app };
  // Issue 9: the device is the OS its JWT says; a token of another OS would go to the wrong vendor. Refused with
  // an error frame (invalid_field); the connection stays, as for any other refused registration.
  if (ctx.os !== undefined && frame.os !== ctx.os) {
    ctx.reject(new SwitchboardError('invalid_field', `os must be the session's os "${ctx.os}" (the JWT's os claim)`));
    return;
  }
  try {
    checkRegistration(reg, ctx.registration);
  } catch (e) {
    ctx.reject(e as SwitchboardError);
    return;
  }
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
