import type { Clock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Gateway } from '../gateway/server.js';

/**
 * The first step of a graceful stop (SWITCHBOARD_SHUTDOWN_DELAY_MS, ms): `/readyz` answers 503 `stopping` at once,
 * and the node goes on serving as before (accepts, sessions, routing) for `delayMs`, so a load balancer or Kubernetes
 * takes it out of rotation before it refuses anything; then the drain starts. 0 (the default) goes straight on.
 * Without it a node was unready for only 0.1-0.8 s before its listener closed: a health check every 5-10 s never saw
 * it, and clients got connection refused (rolling-restart probe).
 */
export async function announceStop(gateway: Gateway | undefined, delayMs: number, clock: Clock, log: Logger): Promise<void> {
  gateway?.announceStop();
  if (delayMs <= 0) return;
  log.info({ delayMs }, 'stopping: /readyz answers 503; serving on until the shutdown delay is over');
  await new Promise<void>((resolve) => clock.setTimeout(resolve, delayMs));
}
