import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { constants as perfConstants, monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
/** Small numeric helpers and the markdown table the benchmark prints. */

/** Latencies collected in nanoseconds; quantiles answered in milliseconds. */
export class LatencySample {
  private values = new Float64Array(1 << 16);
  private n = 0;

  add(ns: number): void {
    if (this.n === this.values.length) {
      const grown = new Float64Array(this.n * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.n++] = ns;
  }

  get count(): number {
    return this.n;
  }

  /** `q` in 0..1; NaN when empty. */
  quantileMs(q: number): number {
    if (this.n === 0) return NaN;
    const sorted = this.values.slice(0, this.n).sort();
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
    return sorted[i] / 1e6;
  }

  summary(): LatencySummary {
    return { count: this.count, p50Ms: this.quantileMs(0.5), p99Ms: this.quantileMs(0.99), maxMs: this.quantileMs(1) };
  }

  clear(): void {
    this.n = 0;
  }
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Monotonic nanoseconds as a decimal string: CLOCK_MONOTONIC is shared by every process on the machine. */
export function monoNs(): string {
  return process.hrtime.bigint().toString();
}

export function sinceNs(stamp: string): number {
  return Number(process.hrtime.bigint() - BigInt(stamp));
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n < 10 ? n.toFixed(2) : n.toFixed(1);
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n >= 10_240 ? `${(n / 1024).toFixed(1)} KiB` : `${Math.round(n)} B`;
}

export interface Row {
  section: string;
  what: string;
  value: string;
  /** Ratio to the decide() ceiling (throughput rows) or to the target (others); empty when meaningless. */
  ratio?: string;
  target?: string;
  verdict?: 'met' | 'MISSED' | '';
  note?: string;
}

export function verdict(ok: boolean | undefined): Row['verdict'] {
  return ok === undefined ? '' : ok ? 'met' : 'MISSED';
}

export function markdownTable(rows: Row[]): string {
  const head = ['section', 'measure', 'value', 'ratio', 'target', 'verdict', 'note'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const cells = [r.section, r.what, r.value, r.ratio ?? '', r.target ?? '', r.verdict ?? '', r.note ?? ''];
    lines.push(`| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Open-loop pacing: calls `send()` so that `rate` per second have been issued at every tick, for `durationMs`,
 * whatever the answers do (a closed loop would hide queueing from the latency figures).
 */
export async function paced(rate: number, durationMs: number, send: () => void): Promise<number> {
  const start = performance.now();
  let sent = 0;
  const total = Math.round((rate * durationMs) / 1000);
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rate) / 1000));
    while (sent < due) {
      send();
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return sent;
}

/** Busy and total jiffies of the whole machine (Linux /proc/stat), to see load from processes not ours. */
export function machineJiffies(): { busy: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], total };
  } catch {
    return undefined;
  }
}

export interface Load {
  /** This process, all threads, % of one core. */
  cpuPct: number;
  /** This process, all threads: CPU time in µs over the same span (a phase adds its tail, see `quiesce`). */
  cpuUs: number;
  /** Main-thread event-loop utilisation, %. */
  eluPct: number;
  /** The whole machine, % of one core (200 = both cores busy); NaN off Linux. */
  machinePct: number;
  /** Event-loop delay (how late a 1 ms timer fired): p99 and max in ms, i.e. the stalls this process had. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  /** V8 full GCs (mark-compact) in this process, and their summed duration in ms (Node's `gc` performance entries). */
  fullGcs: number;
  fullGcMs: number;
}

/** Full GCs of this process so far, counted from Node's `gc` performance entries (issue 13: they made the p99). */
const fullGc = { count: 0, ms: 0 };
const gcObserver = new PerformanceObserver((list) => countFullGcs(list.getEntries()));
gcObserver.observe({ entryTypes: ['gc'] });

function countFullGcs(entries: PerformanceEntry[]): void {
  for (const e of entries) {
    if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind !== perfConstants.NODE_PERFORMANCE_GC_MAJOR) continue;
    fullGc.count++;
    fullGc.ms += e.duration;
  }
}

function fullGcsSince(start: { count: number; ms: number }): { fullGcs: number; fullGcMs: number } {
  const now = fullGcsNow();
  return { fullGcs: now.count - start.count, fullGcMs: now.ms - start.ms };
}

/** The counts up to now, including entries not yet handed to the observer's callback. */
function fullGcsNow(): { count: number; ms: number } {
  countFullGcs(gcObserver.takeRecords());
  return { ...fullGc };
}

/** From now on: CPU of this process, its event-loop utilisation and the machine's CPU, all in %. */
export function loadMeter(): (stop?: boolean) => Load {
  const machine = machineJiffies();
  const usage = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const at = performance.now();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const gcs = fullGcsNow();
  return (stop = true) => {
    if (stop) delay.disable(); // a peek leaves the delay histogram running
    const u = process.cpuUsage(usage);
    const cpuPct = ((u.user + u.system) / 1000 / (performance.now() - at)) * 100;
    const m = machineJiffies();
    const cores = availableParallelism();
    const machinePct = m && machine ? ((m.busy - machine.busy) / (m.total - machine.total)) * 100 * cores : NaN;
    return {
      cpuPct, cpuUs: u.user + u.system, eluPct: performance.eventLoopUtilization(elu).utilization * 100, machinePct,
      loopDelayP99Ms: delay.percentile(99) / 1e6, loopDelayMaxMs: delay.max / 1e6,
      ...fullGcsSince(gcs),
    };
  };
}

/**
 * Waits until this process has been quiet (under 10% of a core for 20 ms; at most `maxMs`) and returns the CPU µs it
 * used meanwhile: the tail of the phase that just ended (acks still coming in, settles, timers). A phase adds it to
 * its own CPU, and the next phase starts without it: the relays and the node share this process, so without it one
 * phase's tail was billed to whichever ran next.
 */
export async function quiesce(maxMs = 1000): Promise<number> {
  const start = process.cpuUsage();
  const t0 = performance.now();
  let last = process.cpuUsage();
  for (;;) {
    await sleep(20);
    const d = process.cpuUsage(last);
    last = process.cpuUsage();
    if (d.user + d.system < 2000 || performance.now() - t0 > maxMs) break;
  }
  const u = process.cpuUsage(start);
  return u.user + u.system;
}

/** One max-rate phase of a window sweep: the window (messages in flight at most), the rate reached and its p99. */
export interface WindowPoint {
  window: number;
  /** msgs/s received. */
  rate: number;
  p99Ms: number;
}

/**
 * Share of the best rate of a sweep that still counts as the max rate: run-to-run spread of one phase's rate on a
 * 2-core VM is ~10-20% (bench/README.md, "A fourth VM": the window sweep).
 */
export const KNEE_RATE_SHARE = 0.9;

/**
 * The knee of a closed-loop window sweep: the smallest window whose rate is at least `share` of the best rate of
 * the sweep. A closed loop at the max rate holds `window` messages in flight, so past the knee a larger window adds
 * only queueing (Little's law: mean latency = in flight / rate), latency of the load generator's own making; the
 * knee is the max-rate point with the least of it. Throws on an empty sweep.
 */
export function kneeOf(points: WindowPoint[], share = KNEE_RATE_SHARE): WindowPoint {
  const measured = points.filter((p) => Number.isFinite(p.rate)); // a phase that received nothing has no rate
  if (measured.length === 0) throw new Error('kneeOf: no points');
  const best = Math.max(...measured.map((p) => p.rate));
  return [...measured].sort((a, b) => a.window - b.window).find((p) => p.rate >= share * best)!;
}
