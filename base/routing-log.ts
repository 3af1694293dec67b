import type { RoutedEvent } from '../protocol/index.js';
import type { Clock, Timer } from './clock.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/**
 * What an operator reads in the logs about routing: one `debug` line per decision (user, message id, route, reason,
 * targets as `device:via`; never a token), and at `info` one summary line per interval with what happened since the
 * last one, taken from the node's own metrics.
 */

/** One debug line for a routing decision; free when debug is off. */
export function logDecision(log: Logger, e: RoutedEvent): void {
  if (!log.isLevelEnabled('debug')) return;
  log.debug({ user: e.user, id: e.id, route: e.route, reason: e.reason, targets: e.targets.map((t) => `${t.device}:${t.via}`) }, 'routed');
}

type Counts = Record<string, number>;

/** Sums of a metric's values by one label (or in all under `total`). */
async function byLabel(metric: { get(): Promise<{ values: { value: number; labels: Record<string, string | number | undefined> }[] }> }, label?: string): Promise<Counts> {
  const out: Counts = {};
  for (const v of (await metric.get()).values) {
    const key = label ? String(v.labels[label] ?? 'none') : 'total';
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

function delta(now: Counts, before: Counts): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(now)) if (v - (before[k] ?? 0) !== 0) out[k] = v - (before[k] ?? 0);
  return out;
}

/**
 * Every `intervalMs` logs `summary` at info: messages accepted, duplicates, decisions by route, pushes by outcome,
 * ack timeouts (all since the previous line), and open sessions by kind and users in memory (now).
 */
export class RoutingSummary {
  private timer?: Timer;
  private last: Record<string, Counts> = {};

  constructor(private readonly metrics: Metrics, private readonly log: Logger, private readonly clock: Clock, private readonly intervalMs: number) {}

  start(): void {
    if (this.intervalMs <= 0 || this.timer) return;
    void this.snapshot().then((s) => { this.last = s; });
    this.schedule();
  }

  /**
   * Stops the timer and logs the last interval's summary (`final: true`): a node stopping in a rolling restart would
   * otherwise take up to an interval of its routing (60 s by default) out of the logs. Call it last, once the node
   * drained, so the line holds the drain too. Nothing is logged when summaries are off (interval 0).
   */
  async stop(): Promise<void> {
    const running = this.timer !== undefined;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (!running) return;
    try {
      this.log.info({ ...(await this.summarize()), final: true }, 'summary');
    } catch {
      // the metrics could not be read: the line is lost, the stop goes on
    }
  }

  /** The summary since the previous call (exposed for tests). */
  async summarize(): Promise<Record<string, unknown>> {
    const now = await this.snapshot();
    const d = (k: string) => delta(now[k], this.last[k] ?? {});
    const line = {
      accepted: d('accepted').total ?? 0,
      duplicates: d('duplicates').total ?? 0,
      routed: d('routed'),
      pushes: d('pushes'),
      ackTimeouts: d('ackTimeouts').total ?? 0,
      sessions: now.sessions,
      residentUsers: now.residentUsers.total ?? 0,
    };
    this.last = now;
    return line;
  }

  private schedule(): void {
    this.timer = this.clock.setTimeout(() => {
      void this.summarize().then((line) => this.log.info(line, 'summary'), () => {}).finally(() => { if (this.timer) this.schedule(); });
    }, this.intervalMs);
  }

  private async snapshot(): Promise<Record<string, Counts>> {
    const m = this.metrics;
    return {
      accepted: await byLabel(m.messagesAccepted),
      duplicates: await byLabel(m.messagesDuplicate),
      routed: await byLabel(m.messagesRouted, 'route'),
      pushes: await byLabel(m.pushOutcomes, 'outcome'),
      ackTimeouts: await byLabel(m.ackTimeouts),
      sessions: await byLabel(m.sessions, 'kind'),
      residentUsers: await byLabel(m.residentUsers),
    };
  }
}
