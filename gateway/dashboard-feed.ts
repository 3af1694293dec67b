import type { ServerResponse } from 'node:http';
import type { Clock, Timer } from '../base/clock.js';
import type { Metrics } from '../base/metrics.js';
import { figuresBetween, mergeSamples, sampleOf, type ClusterFigures, type ClusterTotals, type DashboardFigures, type MetricSample, type Sample } from './dashboard-figures.js';
import { startEventStream } from './event-stream.js';

/** How often the dashboard stream sends figures. */
export const DEFAULT_DASHBOARD_INTERVAL_MS = 1000;
/** Rates and latency quantiles are taken over (about) this window. */
export const DEFAULT_DASHBOARD_WINDOW_MS = 5000;

/** What the cluster composition root exposes to the dashboard; absent on a single node. */
export interface ClusterView {
  /** Live nodes and partition owners. */
  figures(): ClusterFigures;
  /** Every answering node's `switchboard_*` metrics, by node id (this node's included), for cluster totals. */
  gather?(): Promise<Map<string, MetricSample[]>>;
}

/** One gather: when, and each answering node's metrics. */
interface Gathered {
  at: number;
  byNode: Map<string, MetricSample[]>;
}

export interface DashboardFeedOptions {
  nodeId: string;
  metrics: Metrics;
  clock: Clock;
  cluster?: ClusterView;
  /** Default DEFAULT_DASHBOARD_INTERVAL_MS. */
  intervalMs?: number;
  /** Default DEFAULT_DASHBOARD_WINDOW_MS. */
  windowMs?: number;
}

/**
 * Samples the node's registry every `intervalMs` while someone watches, and sends the figures to every open
 * `GET /v1/dashboard/stream` as server-sent events (`event: figures`, `data: <DashboardFigures JSON>`).
 * Samples of the last `windowMs` are kept so a rate covers several ticks and is not one tick's noise.
 */
export class DashboardFeed {
  private readonly intervalMs: number;
  private readonly windowMs: number;
  private readonly samples: Sample[] = [];
  private readonly gathers: Gathered[] = [];
  private readonly streams = new Set<ServerResponse>();
  private timer?: Timer;

  constructor(private readonly opts: DashboardFeedOptions) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_DASHBOARD_INTERVAL_MS;
    this.windowMs = opts.windowMs ?? DEFAULT_DASHBOARD_WINDOW_MS;
  }

  /** Takes a sample now and answers the figures against the oldest sample within the window. */
  async figures(): Promise<DashboardFigures> {
    const now = this.opts.clock.now();
    const sample = sampleOf(now, (await this.opts.metrics.registry.getMetricsAsJSON()) as unknown as MetricSample[]);
    while (this.samples.length > 0 && now - this.samples[0].at > this.windowMs) this.samples.shift();
    const older = this.samples[0];
    this.samples.push(sample);
    const cluster = this.opts.cluster;
    if (!cluster) return figuresBetween(this.opts.nodeId, older, sample);
    const view = cluster.figures();
    // Without the others' answers the node's own figures still go out; the totals come back with the next gather.
    if (cluster.gather) view.totals = await this.clusterTotals(now, () => cluster.gather!()).catch(() => undefined);
    return figuresBetween(this.opts.nodeId, older, sample, view);
  }

  /**
   * Cluster totals over the window: for each node that answered now, its metrics then (or now, for a node that
   * joined meanwhile: no rate yet) and now are summed, so a node leaving or joining does not look like a reset.
   */
  private async clusterTotals(now: number, gather: () => Promise<Map<string, MetricSample[]>>): Promise<ClusterTotals> {
    const byNode = await gather();
    while (this.gathers.length > 0 && now - this.gathers[0].at > this.windowMs) this.gathers.shift();
    const first = this.gathers[0];
    this.gathers.push({ at: now, byNode });
    const then: MetricSample[][] = [];
    const current: MetricSample[][] = [];
    for (const [node, metrics] of byNode) {
      current.push(metrics);
      then.push(first?.byNode.get(node) ?? metrics);
    }
    const older = first ? sampleOf(first.at, mergeSamples(then)) : undefined;
    const { cluster: _none, ...totals } = figuresBetween('cluster', older, sampleOf(now, mergeSamples(current)));
    return { ...totals, answered: byNode.size };
  }

  /**
   * Starts an SSE response on `res`; it gets figures at once and then every interval until the client goes. A HEAD
   * request gets the stream's headers and an ended response, and is never registered as a stream.
   */
  open(res: ServerResponse): void {
    if (!startEventStream(res, this.intervalMs * 2)) return; // HEAD: the headers of the stream, and no stream
    this.streams.add(res);
    res.on('close', () => {
      this.streams.delete(res);
      if (this.streams.size === 0) this.pause();
    });
    void this.tick(false);
  }

  /** Ends every open stream (node stopping). */
  close(): void {
    this.pause();
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  get watchers(): number {
    return this.streams.size;
  }

  private pause(): void {
    if (this.timer) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async tick(scheduled: boolean): Promise<void> {
    if (scheduled) this.timer = undefined;
    if (this.streams.size === 0) return;
    if (!this.timer) this.timer = this.opts.clock.setTimeout(() => void this.tick(true), this.intervalMs);
    let text: string;
    try {
      text = `event: figures\ndata: ${JSON.stringify(await this.figures())}\n\n`;
    } catch (err) {
      text = `event: failed\ndata: ${JSON.stringify({ message: String(err) })}\n\n`;
    }
    for (const res of this.streams) res.write(text);
  }
}
