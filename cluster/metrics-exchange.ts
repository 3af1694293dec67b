import { createInbox, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Metrics } from '../base/metrics.js';
import type { MetricSample } from '../gateway/dashboard-figures.js';

/** How long a gather waits for the other nodes' answers. */
export const DEFAULT_GATHER_TIMEOUT_MS = 500;

export interface MetricsExchangeOptions {
  nc: NatsConnection;
  /** `Subjects.dashboardMetrics`. */
  subject: string;
  metrics: Metrics;
  /** This node's id (answers carry it, so the dashboard can follow each node across gathers). */
  nodeId: string;
  /** How many nodes are live (membership): a gather stops waiting once that many answered. */
  liveNodes(): number;
  timeoutMs?: number;
}

/**
 * The dashboard's cluster-wide figures (issue 12): every node answers a request on `subject` with its own
 * `switchboard_*` metrics as JSON, and `gather()` collects the answers of the live nodes (its own included), so a
 * dashboard on any node can sum the cluster's counters. Core NATS request with many replies; nothing is stored.
 */
export class MetricsExchange {
  private sub?: Subscription;

  constructor(private readonly opts: MetricsExchangeOptions) {}

  start(): void {
    this.sub = this.opts.nc.subscribe(this.opts.subject, {
      callback: (err, msg) => {
        if (err || !msg.reply) return;
        void ownMetrics(this.opts.metrics).then((m) => msg.respond(JSON.stringify({ node: this.opts.nodeId, metrics: m })), () => undefined);
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  /** The metrics of every node that answered within the timeout, by node id. */
  async gather(): Promise<Map<string, MetricSample[]>> {
    const { nc, subject } = this.opts;
    const expected = Math.max(1, this.opts.liveNodes());
    const inbox = createInbox();
    const out = new Map<string, MetricSample[]>();
    const sub = nc.subscribe(inbox, { max: expected });
    const timer = setTimeout(() => sub.unsubscribe(), this.opts.timeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS);
    nc.publish(subject, new Uint8Array(0), { reply: inbox });
    for await (const m of sub) {
      try {
        const answer = m.json<{ node: string; metrics: MetricSample[] }>();
        if (typeof answer.node === 'string' && Array.isArray(answer.metrics)) out.set(answer.node, answer.metrics);
      } catch {
        // an answer that does not parse is left out
      }
    }
    clearTimeout(timer);
    return out;
  }
}

/** This node's `switchboard_*` metrics (the process metrics are per machine and not summed). */
async function ownMetrics(metrics: Metrics): Promise<MetricSample[]> {
  const all = (await metrics.registry.getMetricsAsJSON()) as unknown as MetricSample[];
  return all.filter((m) => m.name.startsWith('switchboard_')).map((m) => ({ name: m.name, type: String(m.type), values: m.values }));
}
