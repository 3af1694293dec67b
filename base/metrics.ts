import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration } from 'prom-client';

/**
 * A prom-client `Counter` bumped on every routed message (issue 13). prom-client hashes and validates the label
 * object on each `inc` (~560 ns with two labels on the bench machine, against ~60 ns for a map bump); here the
 * counts add up per label set in plain numbers and reach the prom-client counter whenever it is read (its
 * `collect`, which every scrape and `get()` runs), so every read sees the same values a plain counter would have.
 * Label values must be strings (they are the map key, joined by U+0001, which no label value of ours holds).
 */
export class HotCounter<L extends string> {
  readonly counter: Counter<L>;
  private readonly pending = new Map<string, { labels: Partial<Record<L, string>>; n: number }>();
  private readonly labelNames: readonly L[];

  constructor(config: CounterConfiguration<L>) {
    this.labelNames = config.labelNames ?? [];
    const flush = (): void => this.flush();
    this.counter = new Counter<L>({ ...config, collect: flush });
  }

  /** Adds `n` (default 1) to the count of this label set. */
  inc(labels: Partial<Record<L, string>>, n = 1): void {
    const key = seriesKey(this.labelNames, labels);
    const slot = this.pending.get(key);
    if (slot !== undefined) slot.n += n;
    else this.pending.set(key, { labels: { ...labels }, n });
  }

  /** The prom-client counter's values, counts so far included. */
  get(): ReturnType<Counter<L>['get']> {
    return this.counter.get();
  }

  private flush(): void {
    for (const slot of this.pending.values()) {
      if (slot.n === 0) continue;
      this.counter.inc(slot.labels, slot.n);
      slot.n = 0;
    }
  }
}

/**
 * The key of a label set among a hot metric's series: with one label (most of ours) its value itself, so no string
 * is built per call; else the values joined by U+0001.
 */
function seriesKey<L extends string>(labelNames: readonly L[], labels: Partial<Record<L, string>>): string {
  if (labelNames.length === 1) return String(labels[labelNames[0]]);
  let key = '';
  for (const name of labelNames) key += `${labels[name]}\u0001`;
  return key;
}

/** One exported value of a HotHistogram, as prom-client's metrics give it (`labels.le`: a bound, or '+Inf'). */
export interface HistogramValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/** One label set of a HotHistogram: its labels, a count per bucket (not cumulative), sum and count. */
interface HistogramSeries {
  labels: Record<string, string>;
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram observed on every routed message and every ack (issue 13). prom-client's `Histogram.observe`
 * validates and hashes the label object and looks up the bucket by its bound as an object key on each call (~2.5%
 * of the node's CPU in the in-process benchmark for two observes per message); here an observation is a bucket
 * search and three additions on a series found by one string key. It registers itself in the prom-client registries
 * as a metric of type `histogram` (the registry only calls `get()`), so `/metrics`, `getMetricsAsJSON()` and the
 * dashboard read exactly what a prom-client `Histogram` with the same observations gives: `<name>_bucket` with
 * cumulative counts per `le` (bounds in seconds, then `+Inf`), `<name>_sum`, `<name>_count`
 * (test/base-hot-metrics.test.ts compares both, line by line). Label values must be strings.
 */
export class HotHistogram<L extends string = never> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly bounds: readonly number[];
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, HistogramSeries>();

  /** `buckets`: upper bounds, ascending (seconds here); `registers`: the prom-client registries that export it. */
  constructor(config: { name: string; help: string; labelNames?: readonly L[]; buckets: readonly number[]; registers: Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames ?? [];
    this.bounds = [...config.buckets];
    for (const r of config.registers) r.registerMetric(this as never);
  }

  /** Observes `value` for a label set (`observe(labels, value)`), or for no labels (`observe(value)`). */
  observe(labels: Record<L, string> | number, value?: number): void {
    let key = '';
    let v: number;
    let named: Record<string, string>;
    if (typeof labels === 'number') {
      v = labels;
      named = {};
    } else {
      v = value!;
      named = labels;
      key = seriesKey(this.labelNames, labels);
    }
    if (!Number.isFinite(v)) throw new TypeError(`Value is not a valid number: ${v}`);
    let s = this.series.get(key);
    if (s === undefined) {
      const copy: Record<string, string> = {};
      for (const name of this.labelNames) if (named[name] !== undefined) copy[name] = named[name];
      s = { labels: copy, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    if (i < b.length) s.buckets[i]++;
    s.sum += v;
    s.count++;
  }

  /** The values as prom-client's `Histogram.get()` gives them (labels with `le` first, then the series' labels). */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: HistogramValue[]; aggregator: 'sum' }> {
    const values: HistogramValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.buckets[i];
        values.push({ labels: { le: this.bounds[i], ...s.labels }, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: bucket });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: this.aggregator };
  }
}

/** Prometheus metrics of one node (`GET /metrics`). One registry per node so tests can run several. */
export class Metrics {
  readonly registry = new Registry();

  readonly messagesAccepted = new HotCounter({ name: 'switchboard_messages_accepted_total', help: 'Messages durably accepted', labelNames: ['source'] as const, registers: [this.registry] });
  readonly messagesDuplicate = new Counter({ name: 'switchboard_messages_duplicate_total', help: 'Messages refused as duplicates', registers: [this.registry] });
  readonly messagesRouted = new HotCounter({ name: 'switchboard_messages_routed_total', help: 'Routing decisions by route and reason (the PC state, or ack_timeout)', labelNames: ['route', 'reason'] as const, registers: [this.registry] });
  readonly deliveries = new HotCounter({ name: 'switchboard_deliveries_total', help: 'Deliveries by channel: direct sends to sessions (pc, mobile) and vendor pushes the vendor accepted (apns, fcm, hms, webpush)', labelNames: ['via'] as const, registers: [this.registry] });
  readonly acks = new Counter({ name: 'switchboard_acks_total', help: 'Direct deliveries acked by the client', registers: [this.registry] });
  readonly ackTimeouts = new Counter({ name: 'switchboard_ack_timeouts_total', help: 'Direct deliveries that fell back after the ack timeout', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly pushOutcomes = new Counter({ name: 'switchboard_push_outcomes_total', help: 'Final vendor push outcomes by result (ok, dead_token, failed)', labelNames: ['vendor', 'outcome'] as const, registers: [this.registry] });
  readonly pushSeconds = new Histogram({
    name: 'switchboard_push_seconds', help: 'Vendor push attempt latency by vendor',
    labelNames: ['vendor'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry],
  });
  readonly pushRetries = new Counter({ name: 'switchboard_push_retries_total', help: 'Vendor push attempts retried', labelNames: ['vendor'] as const, registers: [this.registry] });
  readonly breakerOpen = new Gauge({ name: 'switchboard_vendor_breaker_open', help: '1 while a vendor circuit breaker is open or half-open', labelNames: ['vendor', 'app'] as const, registers: [this.registry] });
  readonly decisionSeconds = new HotHistogram({
    name: 'switchboard_decision_seconds', help: 'Time from acceptance to the routing decision being carried out',
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1], registers: [this.registry],
  });
  /** Messages routed as they came (not replayed from the held store): what a healthy system's latency is read from. */
  readonly deliverySeconds = new HotHistogram({
    name: 'switchboard_delivery_seconds', help: 'Time from acceptance to the device ack (pc, mobile) or the vendor accepting the push, for messages routed as they came (held ones: switchboard_held_delivery_seconds)',
    labelNames: ['via'] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry],
  });
  /**
   * Messages held and delivered later (a replay: a session opened, a token came): minutes to days by nature, so kept
   * apart from switchboard_delivery_seconds, whose quantiles they pinned to its top bucket on a healthy cluster.
   */
  readonly heldDeliverySeconds = new HotHistogram({
    name: 'switchboard_held_delivery_seconds', help: 'Time from acceptance to the device ack or the vendor accepting the push, for messages held first and replayed',
    labelNames: ['via'] as const, buckets: [1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400], registers: [this.registry],
  });
  readonly residentUsers = new Gauge({ name: 'switchboard_resident_users', help: 'User states held in memory', registers: [this.registry] });
  readonly liveActors = new Gauge({ name: 'switchboard_live_actors', help: 'User actors currently spawned', registers: [this.registry] });
  readonly sessions = new Gauge({ name: 'switchboard_sessions', help: 'Open WebSocket sessions on this gateway', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly ownedPartitions = new Gauge({ name: 'switchboard_owned_partitions', help: 'Partitions whose lease this node holds (cluster; all of them on a single node)', registers: [this.registry] });
  readonly leaseTakeovers = new Counter({ name: 'switchboard_lease_takeovers_total', help: 'Partition leases this node took over after another node let them lapse (cluster)', registers: [this.registry] });
  readonly frameErrors = new Counter({ name: 'switchboard_frame_errors_total', help: 'Rejected client frames by code', labelNames: ['code'] as const, registers: [this.registry] });
  readonly heldMessages = new Gauge({ name: 'switchboard_held_messages', help: 'Messages held for unreachable users (cluster: of users loaded on this node)', registers: [this.registry] });
  readonly messagesHeld = new Counter({ name: 'switchboard_messages_held_total', help: 'Messages held, by why (unreachable, ack_timeout, push_failed, policy_never)', labelNames: ['why'] as const, registers: [this.registry] });
  readonly heldReleased = new Counter({ name: 'switchboard_held_released_total', help: 'Held messages no longer held, by why (delivered, read, over_cap)', labelNames: ['why'] as const, registers: [this.registry] });
  readonly clearPushes = new Counter({ name: 'switchboard_clear_pushes_total', help: 'Silent clear pushes (read sync) by vendor and outcome', labelNames: ['vendor', 'outcome'] as const, registers: [this.registry] });
  readonly closes = new Counter({ name: 'switchboard_ws_closes_total', help: 'WebSocket closes by code', labelNames: ['code'] as const, registers: [this.registry] });
  readonly storeWriteFailures = new Counter({ name: 'switchboard_store_write_failures_total', help: 'Failed durable writes (write or fdatasync; in a cluster, decision history puts) by store (inbox, devices, decisions, ...) and whether the failed bytes were cut off', labelNames: ['store', 'cut'] as const, registers: [this.registry] });
  readonly storeDamage = new Counter({ name: 'switchboard_store_damage_total', help: 'Damaged stretches found by a log replay, by store and kind (corrupt: in the middle, torn_tail: at the end)', labelNames: ['store', 'kind'] as const, registers: [this.registry] });
  readonly storeDamagedBytes = new Counter({ name: 'switchboard_store_damaged_bytes_total', help: 'Bytes skipped by log replays because they were damaged or torn', labelNames: ['store'] as const, registers: [this.registry] });
  /**
   * Embedded: one observation per group commit of the inbox (accepts: a 202 waits for it) and the held store, wall
   * time of the `O_DSYNC` write. `_count` over `switchboard_store_synced_records_total` says how many records share
   * a sync; the disk's latency is the floor under an accept's. No series in a cluster (JetStream stores there).
   */
  readonly storeSyncSeconds = new HotHistogram({
    name: 'switchboard_store_sync_seconds', help: 'Wall time of a durable write (write with O_DSYNC, or write + fdatasync) of a batch, by store (inbox, held; embedded only)',
    labelNames: ['store'] as const, buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [this.registry],
  });
  readonly storeSyncedRecords = new HotCounter({ name: 'switchboard_store_synced_records_total', help: 'Records made durable, by store (inbox, held; embedded only): with switchboard_store_sync_seconds_count, records per group commit', labelNames: ['store'] as const, registers: [this.registry] });
  /** Embedded: read every second (store/free-space.ts); below SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES `/readyz` answers 503. No series in a cluster. */
  readonly dataDirFreeBytes = new Gauge({ name: 'switchboard_data_dir_free_bytes', help: 'Bytes free to the node on the data dir\'s file system (statfs bavail x bsize), by data dir (embedded only)', labelNames: ['dir'] as const, registers: [this.registry] });
  readonly storeDurable = new Gauge({ name: 'switchboard_store_durable', help: '1 while accepts can be made durable (embedded: data dir in place, last write or probe succeeded; cluster: connected to NATS, whose JetStream stores them), else 0', registers: [this.registry] });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }
}
