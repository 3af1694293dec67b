import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createLogger } from '../base/logger.js';
import type { Vendor } from '../protocol/index.js';
import { PushPool } from '../senders/pool.js';
import type { PushJob } from '../senders/types.js';
import { DEFAULT_MAX_SOCKETS } from '../senders/vendor-http.js';
import { rawApnsClient, rawFcmClient, type RawClient } from './senders-raw.js';
import type { StandIns } from './senders-servers.js';
import { machineJiffies } from './stats.js';

/**
 * The measured process of `bench/senders.ts` (started with NODE_EXTRA_CA_CERTS and --expose-gc): per vendor, a raw
 * client loop (the ceiling) and then the PushPool (Piscina worker, batches, retry/breaker bookkeeping), each
 * keeping the same number of pushes in flight against the same stand-in. Results go to the parent over IPC.
 */

export interface MeasureOptions {
  pushes: number;
  warmup: number;
  window: number;
  threads: number;
  /** Each row runs this many times, interleaved (raw, pool, raw, pool, ...); the table keeps the best round. */
  rounds: number;
  standIns: StandIns;
}

export interface Memory {
  rss: number;
  heap: number;
}

export interface PhaseResult {
  vendor: Vendor;
  client: 'raw' | 'pool';
  pushes: number;
  ok: number;
  seconds: number;
  rate: number;
  /** CPU of this process (all threads) and of the stand-in process, in % of one core. */
  cpuPct: number;
  standInCpuPct: number;
  /** CPU used by every other process on the machine meanwhile (a test suite beside the bench), % of one core. */
  othersCpuPct: number;
  before: Memory;
  after: Memory;
  peak: Memory;
  batches?: number;
  /** Rounds combined into this row: rate and CPU from the fastest, memory from the first before to the last after. */
  rounds: number;
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
const TOKENS = 1000;

function memory(): Memory {
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

function settledMemory(): Memory {
  for (let i = 0; i < 4; i++) gc();
  return memory();
}

/** utime + stime of another process in ms (Linux /proc; NaN elsewhere). */
function cpuMsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks at USER_HZ = 100
  } catch {
    return NaN;
  }
}


/** Keeps `window` sends in flight until `total` are done; counts the successful ones. */
async function windowed(total: number, window: number, send: (i: number) => Promise<boolean>): Promise<number> {
  let next = 0;
  let ok = 0;
  const lane = async (): Promise<void> => {
    while (next < total) {
      if (await send(next++)) ok++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
  return ok;
}

async function phase(vendor: Vendor, client: 'raw' | 'pool', o: MeasureOptions, send: (i: number) => Promise<boolean>, batches?: () => number): Promise<PhaseResult> {
  await windowed(o.warmup, o.window, send);
  const before = settledMemory();
  const peak = { ...before };
  const sampler = setInterval(() => {
    const m = memory();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heap = Math.max(peak.heap, m.heap);
  }, 50);
  const batches0 = batches?.() ?? 0;
  const cpu0 = process.cpuUsage();
  const standIn0 = cpuMsOf(o.standIns.pid);
  const machine0 = machineJiffies();
  const t0 = process.hrtime.bigint();
  const ok = await windowed(o.pushes, o.window, (i) => send(o.warmup + i));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const standInMs = cpuMsOf(o.standIns.pid) - standIn0;
  const machine1 = machineJiffies();
  const machinePct = machine0 && machine1 ? ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * 100 * availableParallelism() : NaN;
  clearInterval(sampler);
  const after = settledMemory();
  const result: PhaseResult = {
    vendor, client, pushes: o.pushes, ok, seconds, rate: o.pushes / seconds,
    cpuPct: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
    standInCpuPct: (standInMs / (seconds * 1000)) * 100,
    othersCpuPct: 0,
    before, after, peak, rounds: 1,
    ...(batches ? { batches: batches() - batches0 } : {}),
  };
  result.othersCpuPct = Math.max(0, machinePct - result.cpuPct - result.standInCpuPct);
  process.stderr.write(`${vendor} ${client}: ${Math.round(result.rate)} pushes/s, ${ok}/${o.pushes} ok, cpu ${result.cpuPct.toFixed(0)}%, stand-in ${result.standInCpuPct.toFixed(0)}%, others ${result.othersCpuPct.toFixed(0)}%\n`);
  return result;
}

export async function measure(o: MeasureOptions): Promise<PhaseResult[]> {
  const s = o.standIns;
  const apnsTokens = Array.from({ length: TOKENS }, () => randomBytes(32).toString('hex'));
  const fcmTokens = Array.from({ length: TOKENS }, (_, i) => `bench-${i}:APA91b${randomBytes(24).toString('base64url')}`);
  const pool = new PushPool({
    config: { apps: { default: { apns: { endpoint: s.apns.origin, keyFile: s.apns.keyFile, keyId: s.apns.keyId, teamId: s.apns.teamId, topic: s.apns.topic }, fcm: { serviceAccountFile: s.fcm.serviceAccountFile, endpoint: s.fcm.origin } } } },
    log: createLogger('warn'),
    threads: o.threads,
  });
  const job = (vendor: Vendor, tokens: string[], i: number): PushJob => ({
    jobId: `bench-${vendor}-${i}:phone`, user: `user-${i % TOKENS}`, device: 'phone', vendor, token: tokens[i % TOKENS],
    message: { id: `bench-${vendor}-${i}`, to: `user-${i % TOKENS}`, from: 'alice', title: 'Alice', text: `message ${i}`, acceptedAt: Date.now() },
  });
  const viaPool = (vendor: Vendor, tokens: string[]) => async (i: number) => (await pool.push(job(vendor, tokens, i))).outcome === 'ok';
  const results: PhaseResult[] = [];
  const run = async (vendor: Vendor, raw: RawClient, tokens: string[]) => {
    const raws: PhaseResult[] = [];
    const pools: PhaseResult[] = [];
    for (let r = 0; r < o.rounds; r++) {
      raws.push(await phase(vendor, 'raw', o, (i) => raw.send(i)));
      pools.push(await phase(vendor, 'pool', o, viaPool(vendor, tokens), () => pool.batchesSent));
    }
    await raw.close();
    results.push(best(raws), best(pools));
  };
  await run('apns', await rawApnsClient(s.apns, apnsTokens), apnsTokens);
  // The FCM sender's keep-alive agent allows DEFAULT_MAX_SOCKETS connections; the raw client gets the same.
  await run('fcm', await rawFcmClient(s.fcm, fcmTokens, DEFAULT_MAX_SOCKETS), fcmTokens);
  await pool.close();
  return results;
}

/** The fastest round (least disturbed by the rest of the machine), with memory over all rounds: flat or not. */
function best(rounds: PhaseResult[]): PhaseResult {
  const fastest = rounds.reduce((a, b) => (b.rate > a.rate ? b : a));
  return {
    ...fastest,
    rounds: rounds.length,
    before: rounds[0].before,
    after: rounds[rounds.length - 1].after,
    peak: { rss: Math.max(...rounds.map((r) => r.peak.rss)), heap: Math.max(...rounds.map((r) => r.peak.heap)) },
  };
}

// Started by bench/senders.ts: options in, results out, over IPC.
process.once('message', (o: MeasureOptions) => {
  measure(o).then(
    (results) => process.send!({ type: 'results', results }, () => process.exit(0)),
    (err: unknown) => {
      process.stderr.write(`measurement failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
});
