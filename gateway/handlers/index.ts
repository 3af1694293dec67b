import { CLOSE, FRAMES_BY_KIND, SwitchboardError, type ClientFrame } from '../../protocol/index.js';
import type { SessionContext } from './context.js';
import { handleAck } from './ack.js';
import { handlePing } from './ping.js';
import { handlePresence } from './presence.js';
import { handleRead } from './read.js';
import { handleRegister } from './register.js';
import { handleUnregister } from './unregister.js';

export type { SessionContext } from './context.js';

/**
 * The one dispatch of client frames after hello. Each line names the PROTOCOL.md clause it implements.
 * Frames arrive decoded and validated (protocol/frames.ts), and `forbidden` ones are already closed 4403.
 */
export function dispatchFrame(ctx: SessionContext, frame: ClientFrame): void | Promise<void> {
  // §2 close codes: hello is only the first frame; a second one is a protocol violation (4400).
  if (frame.type === 'hello') return ctx.close(CLOSE.protocolViolation, 'hello already received');
  // §2 frame table, "who" column: e.g. register is for mobiles only.
  if (!FRAMES_BY_KIND[ctx.kind].has(frame.type)) {
    return ctx.reject(new SwitchboardError('frame_not_allowed', `"${frame.type}" is not allowed for a ${ctx.kind}`));
  }
  switch (frame.type) {
    case 'presence': return handlePresence(ctx, frame); // §2 presence rows; §4 PC active/inactive; claim 4 reasons
    case 'register': return handleRegister(ctx, frame); // §2 register row: durable push token, answered registered
    case 'ack': return handleAck(ctx, frame); // §2 ack row; §4 ack timeout fallback is the owner's
    case 'read': return handleRead(ctx, frame); // §2 read row; §4 read sync is the owner's
    case 'ping': return handlePing(ctx); // §2 ping row: pong, and the session is refreshed
    case 'unregister': return handleUnregister(ctx); // §2 unregister row (v1.1): forget this device's push token, answered unregistered
  }
}
