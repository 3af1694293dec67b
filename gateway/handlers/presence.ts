import { SwitchboardError, type ClientFrame } from '../../protocol/index.js';
import type { SessionContext } from './context.js';

type PresenceFrame = Extract<ClientFrame, { type: 'presence' }>;

const STATES_BY_KIND = {
  pc: new Set(['active', 'inactive']),
  mobile: new Set(['foreground', 'background']),
} as const;

/**
 * Section 2 presence rows: a PC reports active or inactive with the reason of claim 4 (idle, screen_locked,
 * client_locked); a mobile reports foreground or background. The other kind's states are refused.
 */
export function handlePresence(ctx: SessionContext, frame: PresenceFrame): void {
  if (!STATES_BY_KIND[ctx.kind].has(frame.state)) {
    ctx.reject(new SwitchboardError('frame_not_allowed', `a ${ctx.kind} cannot report state "${frame.state}"`));
    return;
  }
  ctx.publish({
    type: 'presence',
    user: ctx.user,
    device: ctx.device,
    sessionId: ctx.sessionId,
    state: frame.state,
    ...('reason' in frame ? { reason: frame.reason } : {}),
    at: ctx.now(),
  });
}
