import { systemClock } from '../base/clock.js';
import { createLogger } from '../base/logger.js';
import { Metrics } from '../base/metrics.js';
import { startClusterNode } from './cluster-node.js';
import type { Config } from './config.js';
import { systemStatFs } from '../store/free-space.js';
import { checkConfigFiles } from './config-files.js';
import { startEmbeddedNode } from './embedded-node.js';
import { applyHeapGrowth } from './heap-growth.js';
import type { RunningNode, StartOptions } from './running-node.js';

export type { RunningNode, StartOptions } from './running-node.js';

/**
 * Starts one node: the cluster composition root when `SWITCHBOARD_NATS_URL` is set, else the embedded one
 * (PROTOCOL.md section 1). First reads and checks every file the configuration names (credentials, NATS and TLS
 * files): a bad one rejects with a `ConfigError` before anything is opened. Rejects when start-up fails (data dir,
 * NATS, listener); the error names the cause.
 */
export async function startNode(config: Config, opts: StartOptions = {}): Promise<RunningNode> {
  checkConfigFiles(config);
  applyHeapGrowth(config.heapGrowthPercent);
  const resolved = {
    log: opts.log ?? createLogger(config.logLevel, undefined, { node: config.nodeId }),
    clock: opts.clock ?? systemClock,
    metrics: opts.metrics ?? new Metrics(),
    statfs: opts.statfs ?? systemStatFs,
  };
  return config.natsServers.length > 0 ? startClusterNode(config, resolved) : startEmbeddedNode(config, resolved);
}
