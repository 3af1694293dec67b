/**
 * The operator dashboard's figures (issue 12), computed from two samples of the node's Prometheus registry, the same
 * counters `GET /metrics` shows. Pure: samples in, figures out; `DashboardFeed` takes the samples.
 */

/** One metric as prom-client's `registry.getMetricsAsJSON()` gives it. */
export interface MetricSample {
  name: string;
  type: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/** A registry read at one moment. */
export interface Sample {
  /** Epoch ms. */
  at: number;
  metrics: ReadonlyMap<string, MetricSample>;
}

/** A counter's series: its labels, its total since start and its rate over the window (per second). */
export interface CounterRow {
  labels: Record<string, string>;
  total: number;
  rate: number;
}

/** p50 and p99 in seconds over the window (null with no observations), and how many observations they rest on. */
export interface Quantiles {
  p50: number | null;
  p99: number | null;
  count: number;
}

/** What the cluster code knows about the cluster; provided by the cluster composition root only. */
export interface ClusterFigures {
  /** Live node ids, sorted. */
  nodes: string[];
  /** Each partition's lease owner ('' when free) and tenure counter. */
  partitions: { partition: number; owner: string; epoch: number }[];
  /** The same figures summed over every node that answered (`answered` of them); absent when not gathered. */
  totals?: ClusterTotals;
}

/** Cluster-wide figures: the counters and histograms of the answering nodes summed, then rated over the window. */
export type ClusterTotals = Omit<DashboardFigures, 'cluster'> & { answered: number };

/** One SSE event of `GET /v1/dashboard/stream` and the body of `GET /v1/dashboard`. */
export interface DashboardFigures {
  node: string;
  /** Epoch ms of the newer sample. */
  at: number;
  /** Seconds between the two samples the rates and quantiles are taken over (0 on the first sample: rates 0). */
  windowSeconds: number;
  accepted: CounterRow[];
  duplicates: CounterRow[];
  /** `switchboard_messages_routed_total` by route and reason. */
  routed: CounterRow[];
  deliveries: CounterRow[];
  acks: CounterRow[];
  ackTimeouts: CounterRow[];
  /** Vendor outcomes by vendor and outcome. */
  pushOutcomes: CounterRow[];
  /** Any held-messages metric (`switchboard_held…`, `switchboard_messages_held…`), when the node has one; else empty. */
  held: { name: string; labels: Record<string, string>; value: number }[];
  decisionLatency: Quantiles;
  deliveryLatency: Quantiles;
  sessions: { kind: string; value: number }[];
  ownedPartitions: number;
  leaseTakeovers: number;
  cluster?: ClusterFigures;
}

/** Names of held-messages metrics (PROTOCOL.md v1.1 section 4, route `held`), whichever way they are worded. */
export const HELD_METRIC = /^switchboard_(?:messages_)?held(?:_|$)/;

/** A sample of `metrics`, copied: prom-client hands out its live value objects, which later increments change. */
export function sampleOf(at: number, metrics: MetricSample[]): Sample {
  const copy = (m: MetricSample): MetricSample => ({
    name: m.name,
    type: String(m.type),
    values: m.values.map((v) => ({ value: v.value, labels: { ...v.labels }, ...(v.metricName === undefined ? {} : { metricName: v.metricName }) })),
  });
  return { at, metrics: new Map(metrics.map((m) => [m.name, copy(m)])) };
}

/** Figures between `older` (undefined on the first sample) and `newer`. */
export function figuresBetween(node: string, older: Sample | undefined, newer: Sample, cluster?: ClusterFigures): DashboardFigures {
  const seconds = older ? Math.max(0, (newer.at - older.at) / 1000) : 0;
  const rows = (name: string) => counterRows(older?.metrics.get(name), newer.metrics.get(name), seconds);
  const held: DashboardFigures['held'] = [];
  for (const [name, m] of newer.metrics) {
    if (!HELD_METRIC.test(name) || m.type === 'histogram') continue;
    for (const v of m.values) held.push({ name, labels: stringLabels(v.labels), value: v.value });
  }
  const sessions = (newer.metrics.get('switchboard_sessions')?.values ?? []).map((v) => ({ kind: String(v.labels.kind ?? ''), value: v.value }));
  const single = (name: string) => newer.metrics.get(name)?.values.reduce((s, v) => s + v.value, 0) ?? 0;
  const out: DashboardFigures = {
    node,
    at: newer.at,
    windowSeconds: seconds,
    accepted: rows('switchboard_messages_accepted_total'),
    duplicates: rows('switchboard_messages_duplicate_total'),
    routed: rows('switchboard_messages_routed_total'),
    deliveries: rows('switchboard_deliveries_total'),
    acks: rows('switchboard_acks_total'),
    ackTimeouts: rows('switchboard_ack_timeouts_total'),
    pushOutcomes: rows('switchboard_push_outcomes_total'),
    held,
    decisionLatency: windowQuantiles(older?.metrics.get('switchboard_decision_seconds'), newer.metrics.get('switchboard_decision_seconds')),
    deliveryLatency: windowQuantiles(older?.metrics.get('switchboard_delivery_seconds'), newer.metrics.get('switchboard_delivery_seconds')),
    sessions,
    ownedPartitions: single('switchboard_owned_partitions'),
    leaseTakeovers: single('switchboard_lease_takeovers_total'),
  };
  if (cluster) out.cluster = cluster;
  return out;
}

/**
 * Several nodes' metrics summed into one list: each series (name, sample name, labels) adds up over the nodes, so
 * counters give cluster totals and histogram buckets the cluster's distribution. Gauges add up too (sessions, owned
 * partitions), which is what the cluster view wants of them.
 */
export function mergeSamples(lists: MetricSample[][]): MetricSample[] {
  const byName = new Map<string, { m: MetricSample; series: Map<string, MetricSample['values'][number]> }>();
  for (const list of lists) {
    for (const m of list) {
      let entry = byName.get(m.name);
      if (!entry) byName.set(m.name, (entry = { m: { name: m.name, type: String(m.type), values: [] }, series: new Map() }));
      for (const v of m.values) {
        const key = `${v.metricName ?? ''}|${labelKey(v.labels)}`;
        const known = entry.series.get(key);
        if (known) known.value += v.value;
        else {
          const copy = { value: v.value, labels: { ...v.labels }, ...(v.metricName === undefined ? {} : { metricName: v.metricName }) };
          entry.series.set(key, copy);
          entry.m.values.push(copy);
        }
      }
    }
  }
  return [...byName.values()].map((e) => e.m);
}

/** Each series of a counter with its total and its increase per second since `older` (a reset counts from 0). */
export function counterRows(older: MetricSample | undefined, newer: MetricSample | undefined, seconds: number): CounterRow[] {
  if (!newer) return [];
  const before = new Map((older?.values ?? []).map((v) => [labelKey(v.labels), v.value]));
  return newer.values.map((v) => {
    const prev = before.get(labelKey(v.labels)) ?? 0;
    const increase = v.value >= prev ? v.value - prev : v.value;
    return { labels: stringLabels(v.labels), total: v.value, rate: seconds > 0 ? increase / seconds : 0 };
  });
}

/**
 * p50/p99 of a histogram's observations between two samples, all label sets summed, interpolated linearly inside
 * the bucket as Prometheus' `histogram_quantile` does. With no observations in the window: nulls.
 */
export function windowQuantiles(older: MetricSample | undefined, newer: MetricSample | undefined): Quantiles {
  const buckets = bucketCounts(newer);
  const prev = bucketCounts(older);
  const delta = [...buckets].map(([le, n]) => [le, Math.max(0, n - (prev.get(le) ?? 0))] as [number, number]).sort((a, b) => a[0] - b[0]);
  const count = delta.length > 0 ? delta[delta.length - 1][1] : 0;
  if (count === 0) return { p50: null, p99: null, count: 0 };
  return { p50: quantile(0.5, delta), p99: quantile(0.99, delta), count };
}

/** `histogram_quantile` over cumulative buckets sorted by upper bound (the last one +Inf). */
export function quantile(q: number, cumulative: [le: number, count: number][]): number | null {
  const total = cumulative[cumulative.length - 1]?.[1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, n] of cumulative) {
    if (n >= rank) {
      // Past the last finite bucket Prometheus answers that bucket's upper bound.
      if (le === Infinity) return lowerBound;
      return lowerBound + (le - lowerBound) * ((rank - lowerCount) / Math.max(1e-12, n - lowerCount));
    }
    lowerBound = le;
    lowerCount = n;
  }
  return lowerBound;
}

function bucketCounts(m: MetricSample | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const v of m?.values ?? []) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
    out.set(le, (out.get(le) ?? 0) + v.value);
  }
  return out;
}

function stringLabels(labels: Record<string, string | number>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) out[k] = String(v);
  return out;
}

function labelKey(labels: Record<string, string | number>): string {
  return Object.keys(labels).sort().map((k) => `${k}=${labels[k]}`).join(',');
}
