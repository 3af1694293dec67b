import type { LatencySummary, Load } from './stats.js';

/** Messages between the benchmark (the node's process) and the load-generator child (bench/clients.ts). */

export interface ClientsSetup {
  port: number;
  jwtSecret: string;
  apiKey: string;
  users: number;
}

/** User `i`: even users keep their PC active (route pc), odd ones lock it with the phone in front (route mobile). */
export function userId(i: number): string {
  return `u${i}`;
}

export function pcActive(i: number): boolean {
  return i % 2 === 0;
}

export type ToClients =
  | ({ type: 'connect' } & ClientsSetup)
  /** Forget received ids, counts and latencies: a new phase starts. */
  | { type: 'reset' }
  /** Answered by `stats`. */
  | { type: 'report' }
  /** HTTP open loop: `rate` POST /v1/messages per second for `durationMs`; answered by `http_done`. */
  | { type: 'http_paced'; phase: string; rate: number; durationMs: number }
  /** HTTP closed loop: `count` messages with at most `window` not yet received; answered by `http_done`. */
  | { type: 'http_max'; phase: string; count: number; window: number; concurrency: number; batch?: number }
  | { type: 'exit' };

export interface ClientStats {
  received: number;
  duplicates: number;
  byKind: { pc: number; mobile: number };
  /** Deliveries that reached the other device than the user's presence says (a routing error). */
  misrouted: number;
  latency: LatencySummary;
  /** Monotonic ms of the first and last receipt since the last reset. */
  firstAtMs: number;
  lastAtMs: number;
  closes: Record<string, number>;
  /** The load generator since the last reset: CPU and event-loop utilisation, %. */
  load: Load;
}

export type FromClients =
  | { type: 'ready'; sockets: number; connectMs: number }
  | { type: 'progress'; received: number }
  | { type: 'stats'; stats: ClientStats }
  | { type: 'http_done'; sent: number; errors: number; statuses: Record<string, number>; firstSendMs: number; lastSendMs: number }
  | { type: 'failed'; error: string };

export function monoMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
