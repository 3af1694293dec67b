import type { UserDirectory } from '../actors/directory.js';
import type { Clock } from '../base/clock.js';
import type { Logger } from '../base/logger.js';
import type { Metrics } from '../base/metrics.js';
import type { StatFs } from '../store/free-space.js';
import type { Ingress } from '../store/types.js';
import type { StartError } from './start-error.js';

/** A started node: what `bin/switchboard.ts` runs and what in-process tests and benchmarks drive. */
export interface RunningNode {
  readonly nodeId: string;
  /** The HTTP + WebSocket port actually bound (SWITCHBOARD_PORT, or the free port chosen for `0`). */
  readonly port: number;
  /** The routing core: one actor per user. */
  readonly router: UserDirectory;
  /** Durable acceptance, the in-process entry (benchmarks, tests): the same path as `POST /v1/messages`. */
  readonly ingress: Pick<Ingress, 'accept'>;
  readonly metrics: Metrics;
  readonly apiKey: string;
  readonly jwtSecret: string;
  /** Graceful stop (SIGTERM): stop accepting, finish in-flight work, flush durable state. */
  stop(): Promise<void>;
  /**
   * Resolves if the running node finds that it must not go on, for a reason start-up refuses with exit 2 (cluster: a
   * live node that started earlier uses another SWITCHBOARD_PARTITIONS, which two nodes starting together can both
   * miss at start); the caller stops it gracefully and exits with `exitCode`. Absent or never resolved otherwise.
   */
  readonly refused?: Promise<StartError>;
}

/** What a caller may inject into a composition root; defaults are the real ones. */
export interface StartOptions {
  log?: Logger;
  clock?: Clock;
  /** Metrics registry; default metrics (process, GC) are collected unless disabled. */
  metrics?: Metrics;
  /**
   * How the embedded node reads its data dir's free space (SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES); default
   * `fs.promises.statfs`. Tests inject figures to show a disk nearly full.
   */
  statfs?: StatFs;
}
