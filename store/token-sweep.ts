import type { Clock, Timer } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { DeviceRegistry } from './types.js';

/** How often tokens are checked for age; ages are counted in days, so a few sweeps a day are plenty. */
export const TOKEN_SWEEP_INTERVAL_MS = 6 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;

export interface TokenSweepOptions {
  registry: Pick<DeviceRegistry, 'prune'>;
  clock: Clock;
  log: Logger;
  /** SWITCHBOARD_TOKEN_MAX_AGE_DAYS: a token neither stored nor seen for this long is pruned (issue 9). */
  maxAgeDays: number;
  /** Time between sweeps, ms; default TOKEN_SWEEP_INTERVAL_MS (6 h). */
  intervalMs?: number;
  /** Cluster: only one node needs to sweep (the registry's compare-and-set keeps a second one harmless). */
  shouldRun?: () => boolean;
}

/**
 * Prunes stale push tokens every `intervalMs` on the injected clock, first one interval after start. Each pruned
 * token is reported by the registry (`token_removed`, reason `pruned`). A failed sweep is logged and retried at
 * the next interval. Returns a stop function that also waits for a sweep under way.
 */
export function startTokenSweep(o: TokenSweepOptions): () => Promise<void> {
  const intervalMs = o.intervalMs ?? TOKEN_SWEEP_INTERVAL_MS;
  let timer: Timer | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const sweep = async (): Promise<void> => {
    if (o.shouldRun && !o.shouldRun()) return;
    const before = o.clock.now() - o.maxAgeDays * DAY_MS;
    try {
      const pruned = await o.registry.prune(before);
      if (pruned > 0) o.log.info({ pruned, maxAgeDays: o.maxAgeDays }, 'stale push tokens pruned');
    } catch (err) {
      o.log.warn({ err: String(err) }, 'push token sweep failed; retried at the next interval');
    }
  };
  const schedule = (): void => {
    timer = o.clock.setTimeout(() => {
      running = sweep().finally(() => {
        running = undefined;
        if (!stopped) schedule();
      });
    }, intervalMs);
  };
  schedule();
  return async () => {
    stopped = true;
    if (timer) o.clock.clearTimeout(timer);
    await running;
  };
}
